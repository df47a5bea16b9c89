"""Conformance probe, part 4: throttling like Microsoft's, every fault mode, and the
request counters."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from tools.graphsim.config import RateLimit, ThrottlePolicy
from tools.graphsim.testing import RunningTenant, running_tenant
from tools.graphsim.throttling import Charge, Throttled, Throttler

from .probe import collect, get

pytestmark = pytest.mark.sim


def _upn(t: RunningTenant) -> str:
    return next(u["userPrincipalName"] for u in t.admin.users() if u["purpose"] == "user")


def test_outlook_rate_limit_gives_429_with_retry_after(tmp_path: Path) -> None:
    # 10 requests per 5 s for this test (instead of 10,000 per 600 s): wide
    # enough that 11 requests fit in the window on a loaded machine.
    policy = ThrottlePolicy(outlook_requests=RateLimit(10, 5.0))
    with running_tenant(tmp_path / "t", seed=21, throttling=policy) as t:
        s = t.graph()
        upn = _upn(t)
        statuses = [s.get(t.url(f"/users/{upn}/mailFolders")).status_code for _ in range(11)]
        assert statuses[:10] == [200] * 10
        throttled = s.get(t.url(f"/users/{upn}/mailFolders"))
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1
        assert throttled.json()["error"]["code"] == "ApplicationThrottled"
        # Another mailbox is not affected (limits are per app and mailbox).
        other = next(
            u["userPrincipalName"]
            for u in t.admin.users()
            if u["purpose"] == "user" and u["userPrincipalName"] != upn
        )
        assert s.get(t.url(f"/users/{other}/mailFolders")).status_code == 200
        time.sleep(int(throttled.headers["Retry-After"]))
        assert s.get(t.url(f"/users/{upn}/mailFolders")).status_code == 200


def test_fifth_concurrent_mailbox_request_is_refused(tmp_path: Path) -> None:
    # Even with rate limits off, the 4-per-mailbox concurrency limit holds.
    with running_tenant(tmp_path / "t", seed=22, throttling=False) as t:
        upn = _upn(t)
        token = t.token()
        t.admin.inject_faults({"kind": "slow", "delay": 5.0, "match": "/mailFolders$", "count": 5})
        results: list[requests.Response] = []
        lock = threading.Lock()

        def call() -> None:
            s = t.session()
            r = s.get(
                t.url(f"/users/{upn}/mailFolders"), headers={"Authorization": f"Bearer {token}"}
            )
            with lock:
                results.append(r)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for th in threads:
            th.start()
        # Wait until the four are in flight (slowed down), however long the
        # machine takes to start them; the fifth then comes during their 5 s.
        deadline = time.monotonic() + 60
        while sum(t.sim.throttler._inflight.values()) < 4:
            assert time.monotonic() < deadline, "the four requests never got in flight"
            time.sleep(0.02)
        fifth = t.session().get(
            t.url(f"/users/{upn}/mailFolders"), headers={"Authorization": f"Bearer {token}"}
        )
        for th in threads:
            th.join()
        assert [r.status_code for r in results] == [200] * 4
        assert fifth.status_code == 429
        assert (
            fifth.json()["error"]["message"] == "Application is over its MailboxConcurrency limit."
        )
        assert "Retry-After" in fifth.headers


def test_sharepoint_resource_units_and_ratelimit_headers(tmp_path: Path) -> None:
    # scale 0.01: 1,200 resource units per minute become 12 per 0.6 s.
    with running_tenant(tmp_path / "t", seed=23, throttling=0.01) as t:
        s = t.graph()
        drive = get(s, t.url(f"/users/{_upn(t)}/drive"))  # 1 unit
        seen_headers = False
        for _ in range(10):
            r = s.get(t.url(f"/drives/{drive['id']}/items/root/children"))  # 2 units each
            seen_headers = seen_headers or "RateLimit-Limit" in r.headers
            if r.status_code == 429:
                break
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert seen_headers


def test_teams_channel_message_limit(tmp_path: Path) -> None:
    with running_tenant(tmp_path / "t", seed=24) as t:  # Microsoft's limits: 4 rps per channel
        s = t.graph()
        team = collect(s, t.url("/teams"))[0]
        ch = get(s, t.url(f"/teams/{team['id']}/channels"))["value"][0]
        codes = [
            s.get(t.url(f"/teams/{team['id']}/channels/{ch['id']}/messages")).status_code
            for _ in range(6)
        ]
        assert 429 in codes
        assert codes[0] == 200


def test_protected_api_switch(fresh_tenant: RunningTenant) -> None:
    s = fresh_tenant.graph()
    team = collect(s, fresh_tenant.url("/teams"))[0]
    ch = get(s, fresh_tenant.url(f"/teams/{team['id']}/channels"))["value"][0]
    fresh_tenant.admin.switches(protected_api_approved=False)
    resp = s.get(fresh_tenant.url(f"/teams/{team['id']}/channels/{ch['id']}/messages/delta"))
    assert resp.status_code == 403
    assert "Protected API" in resp.json()["error"]["message"]
    assert s.get(fresh_tenant.url(f"/teams/{team['id']}/channels")).status_code == 200
    fresh_tenant.admin.switches(protected_api_approved=True)
    assert (
        s.get(fresh_tenant.url(f"/teams/{team['id']}/channels/{ch['id']}/messages")).status_code
        == 200
    )


def test_unlicensed_user(fresh_tenant: RunningTenant) -> None:
    s = fresh_tenant.graph()
    upn = _upn(fresh_tenant)
    fresh_tenant.admin.switches(unlicensed=[upn])
    r = s.get(fresh_tenant.url(f"/users/{upn}/messages"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    assert s.get(fresh_tenant.url(f"/users/{upn}/drive")).status_code == 404
    fresh_tenant.admin.switches(licensed=[upn])
    assert s.get(fresh_tenant.url(f"/users/{upn}/messages")).status_code == 200


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("429", 429, "TooManyRequests"),
        ("503", 503, "serviceNotAvailable"),
        ("504", 504, "GatewayTimeout"),
        ("500", 500, "generalException"),
    ],
)
def test_status_faults(fresh_tenant: RunningTenant, kind: str, status: int, code: str) -> None:
    s = fresh_tenant.graph()
    fresh_tenant.admin.inject_faults(
        {"kind": kind, "match": r"GET /v1\.0/users$", "count": 1, "retry_after": 2}
    )
    r = s.get(fresh_tenant.url("/users"))
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    if kind in ("429", "503"):
        assert r.headers["Retry-After"] == "2"
    assert s.get(fresh_tenant.url("/users")).status_code == 200
    assert fresh_tenant.admin.faults()[0]["fired"] == 1


def test_dropped_connection_and_slow_response(fresh_tenant: RunningTenant) -> None:
    s = fresh_tenant.graph()
    fresh_tenant.admin.inject_faults({"kind": "drop", "match": "/users$", "count": 1})
    with pytest.raises(requests.ConnectionError):
        s.get(fresh_tenant.url("/users"))
    assert s.get(fresh_tenant.url("/users")).status_code == 200
    fresh_tenant.admin.inject_faults({"kind": "slow", "match": "/users$", "count": 1, "delay": 0.6})
    started = time.monotonic()
    assert s.get(fresh_tenant.url("/users")).status_code == 200
    assert time.monotonic() - started >= 0.6


def test_drop_mid_response_then_resume_with_range(fresh_tenant: RunningTenant) -> None:
    s = fresh_tenant.graph()
    drive = get(s, fresh_tenant.url(f"/users/{_upn(fresh_tenant)}/drive"))
    big = max(
        (
            i
            for i in collect(s, fresh_tenant.url(f"/drives/{drive['id']}/root/delta"))
            if "file" in i
        ),
        key=lambda i: i["size"],
    )
    url = big["@microsoft.graph.downloadUrl"]
    fresh_tenant.admin.inject_faults({"kind": "drop_mid", "match": "^GET /_dl/", "count": 1})
    anon = fresh_tenant.session()
    received = b""
    errors = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
    with pytest.raises(errors), anon.get(url, stream=True) as r:
        for chunk in r.iter_content(65536):
            received += chunk
    assert 0 < len(received) < big["size"]
    rest = anon.get(url, headers={"Range": f"bytes={len(received)}-"})
    assert rest.status_code == 206
    assert len(received) + len(rest.content) == big["size"]


def test_commit_then_drop(fresh_tenant: RunningTenant) -> None:
    s = fresh_tenant.graph()
    upn = _upn(fresh_tenant)
    before = get(s, fresh_tenant.url(f"/users/{upn}/mailFolders/drafts"))["totalItemCount"]
    fresh_tenant.admin.inject_faults({"kind": "commit_drop", "match": "/messages$", "count": 1})
    with pytest.raises(requests.ConnectionError):
        s.post(
            fresh_tenant.url(f"/users/{upn}/mailFolders/drafts/messages"),
            json={"subject": "committed"},
        )
    after = collect(
        s, fresh_tenant.url(f"/users/{upn}/mailFolders/drafts/messages?$select=subject")
    )
    assert len(after) == before + 1
    assert any(m["subject"] == "committed" for m in after)


def test_fault_rate_is_seeded(fresh_tenant: RunningTenant) -> None:
    s = fresh_tenant.graph()

    def run() -> list[int]:
        fresh_tenant.admin.clear_faults()
        fresh_tenant.admin.inject_faults({"kind": "503", "match": "/users$", "rate": 0.5}, seed=42)
        return [s.get(fresh_tenant.url("/users")).status_code for _ in range(20)]

    first = run()
    assert first == run()
    assert 0 < first.count(503) < 20


def test_batch_parts_get_their_own_429(fresh_tenant: RunningTenant) -> None:
    s = fresh_tenant.graph()
    fresh_tenant.admin.inject_faults({"kind": "429", "match": r"/users\?\$top=1", "count": 1})
    body = {
        "requests": [
            {"id": "1", "method": "GET", "url": "/users?$top=1"},
            {"id": "2", "method": "GET", "url": "/users?$top=2"},
        ]
    }
    parts = {p["id"]: p for p in s.post(fresh_tenant.url("/$batch"), json=body).json()["responses"]}
    assert parts["1"]["status"] == 429
    assert "Retry-After" in parts["1"]["headers"]
    assert parts["2"]["status"] == 200


def test_stats_count_what_the_issue_says(fresh_tenant: RunningTenant) -> None:
    s = fresh_tenant.graph()  # token request: not counted
    fresh_tenant.admin.reset_stats()
    upn = _upn(fresh_tenant)
    s.get(fresh_tenant.url("/users"))
    s.get(fresh_tenant.url(f"/users/{upn}/mailFolders"))
    drive = get(s, fresh_tenant.url(f"/users/{upn}/drive"))
    item = next(
        i
        for i in collect(s, fresh_tenant.url(f"/drives/{drive['id']}/items/root/children"))
        if "file" in i
    )
    s.get(fresh_tenant.url(f"/drives/{drive['id']}/items/{item['id']}/content"))  # 302 + download
    s.post(
        fresh_tenant.url("/$batch"),
        json={
            "requests": [
                {"id": "1", "method": "GET", "url": "/users"},
                {"id": "2", "method": "GET", "url": "/teams"},
            ]
        },
    )
    fresh_tenant.admin.inventory()  # admin: not counted
    stats = fresh_tenant.admin.stats()
    assert stats["requests_total"] == 9  # 7 HTTP requests (302 and download apart) + 2 parts
    assert stats["by_endpoint"]["GET /users"] == 2
    assert stats["by_endpoint"]["GET /_dl/{token}"] == 1
    assert stats["by_endpoint"]["POST /$batch"] == 1
    assert stats["batch_parts"] == 2
    assert stats["content_downloads"] == 1
    assert stats["by_status"]["302"] == 1
    assert stats["bytes_served"] > item["size"]


def test_upload_bytes_limit_counts_only_accepted_uploads() -> None:
    """A refused upload delivered nothing, so it does not count; one larger than
    the whole limit passes once it is alone in the window (no livelock)."""
    policy = ThrottlePolicy(outlook_upload_bytes=RateLimit(1_000, 0.5))
    throttler = Throttler(policy)
    upload = Charge(service="outlook", mailbox="m", upload_bytes=600)
    throttler.admit("app", upload).release()
    with pytest.raises(Throttled) as refused:
        throttler.admit("app", upload)
    assert refused.value.code == "ApplicationThrottled"
    time.sleep(0.6)  # the accepted 600 bytes leave the window; the refused ones never counted
    throttler.admit("app", upload).release()
    time.sleep(0.6)
    too_big = Charge(service="outlook", mailbox="m", upload_bytes=5_000)
    throttler.admit("app", too_big).release()  # alone in the window
    with pytest.raises(Throttled):
        throttler.admit("app", upload)
