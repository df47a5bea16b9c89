"""Conformance probe, part 3: content. Downloads (302, pre-authenticated URL, Range),
MIME, uploads by session in 320 KiB multiples, attachment sessions, and $batch."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import os
import time

import pytest
import quickxorhash
import requests

from tools.graphsim.testing import RunningTenant

from .probe import collect, get

pytestmark = pytest.mark.sim

FRAGMENT = 327_680


@pytest.fixture(scope="module")
def s(tenant: RunningTenant) -> requests.Session:
    return tenant.graph()


@pytest.fixture(scope="module")
def upn(tenant: RunningTenant) -> str:
    return next(u["userPrincipalName"] for u in tenant.admin.users() if u["purpose"] == "user")


def _qxh(data: bytes) -> str:
    h = quickxorhash.quickxorhash()
    h.update(data)
    return base64.b64encode(h.digest()).decode()


def test_download_redirect_range_and_hash(
    tenant: RunningTenant, s: requests.Session, upn: str
) -> None:
    drive = get(s, tenant.url(f"/users/{upn}/drive"))
    items = collect(s, tenant.url(f"/drives/{drive['id']}/root/delta"))
    big = max((i for i in items if "file" in i), key=lambda i: i["size"])
    assert big["size"] > 4 * 1024 * 1024
    resp = s.get(
        tenant.url(f"/drives/{drive['id']}/items/{big['id']}/content"), allow_redirects=False
    )
    assert resp.status_code == 302
    url = resp.headers["Location"]
    anon = tenant.session()  # pre-authenticated: no Authorization header
    full = anon.get(url)
    assert full.status_code == 200
    assert len(full.content) == big["size"]
    assert _qxh(full.content) == big["file"]["hashes"]["quickXorHash"]
    part = anon.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{big['size']}"
    assert part.content == full.content[1000:2000]
    tail = anon.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206
    assert tail.content == full.content[-10:]
    resumed = anon.get(url, headers={"Range": f"bytes={big['size'] - 5}-"})
    assert resumed.content == full.content[-5:]
    bad = anon.get(url, headers={"Range": f"bytes={big['size'] + 10}-"})
    assert bad.status_code == 416
    # The downloadUrl property is the same pre-authenticated URL.
    meta = get(
        s,
        tenant.url(
            f"/drives/{drive['id']}/items/{big['id']}?$select=id,@microsoft.graph.downloadUrl"
        ),
    )
    assert (
        anon.get(meta["@microsoft.graph.downloadUrl"], headers={"Range": "bytes=0-0"}).content
        == full.content[:1]
    )
    # A OneNote notebook has no content stream.
    notebook = next(i for i in items if "package" in i)
    assert notebook["package"]["type"] == "oneNote"
    assert (
        s.get(
            tenant.url(f"/drives/{drive['id']}/items/{notebook['id']}/content"),
            allow_redirects=False,
        ).status_code
        == 404
    )


def test_versions_download(tenant: RunningTenant, s: requests.Session, upn: str) -> None:
    drive = get(s, tenant.url(f"/users/{upn}/drive"))
    items = collect(s, tenant.url(f"/drives/{drive['id']}/root/delta"))
    for item in (i for i in items if "file" in i):
        versions = get(s, tenant.url(f"/drives/{drive['id']}/items/{item['id']}/versions"))["value"]
        if len(versions) > 1:
            break
    else:
        pytest.fail("no file with versions")
    assert versions[0]["size"] == item["size"]
    old = versions[-1]
    resp = s.get(
        tenant.url(f"/drives/{drive['id']}/items/{item['id']}/versions/{old['id']}/content")
    )
    assert resp.status_code == 200
    assert len(resp.content) == old["size"]


def test_mime_value_is_parseable_and_stable(
    tenant: RunningTenant, s: requests.Session, upn: str
) -> None:
    msgs = collect(
        s,
        tenant.url(
            f"/users/{upn}/mailFolders/inbox/messages?$select=id,subject,hasAttachments,internetMessageId"
        ),
    )
    first = s.get(tenant.url(f"/users/{upn}/messages/{msgs[0]['id']}/$value")).content
    assert first == s.get(tenant.url(f"/users/{upn}/messages/{msgs[0]['id']}/$value")).content
    parsed = email.message_from_bytes(first, policy=email.policy.default)
    assert parsed["Message-ID"] == msgs[0]["internetMessageId"]
    assert str(parsed["Subject"]) == msgs[0]["subject"]
    atts = collect(s, tenant.url(f"/users/{upn}/messages/{msgs[0]['id']}/attachments"))
    files = [a for a in atts if not a["isInline"]]
    assert msgs[0]["hasAttachments"]
    assert files
    mime_atts = {a.get_filename(): a.get_payload(decode=True) for a in parsed.iter_attachments()}
    for a in files:
        raw = s.get(
            tenant.url(f"/users/{upn}/messages/{msgs[0]['id']}/attachments/{a['id']}/$value")
        ).content
        assert raw == base64.b64decode(a["contentBytes"]) == mime_atts[a["name"]]
        assert len(raw) == a["size"]


def test_upload_session_in_320k_fragments(
    tenant: RunningTenant, s: requests.Session, upn: str
) -> None:
    data = os.urandom(3 * FRAGMENT * 2 + 12345)
    session = s.post(
        tenant.url(f"/users/{upn}/drive/root:/Uploads/big.bin:/createUploadSession"),
        json={
            "item": {
                "@microsoft.graph.conflictBehavior": "replace",
                "fileSystemInfo": {"lastModifiedDateTime": "2020-01-02T03:04:05Z"},
            }
        },
    ).json()
    url = session["uploadUrl"]
    anon = tenant.session()
    # With an Authorization header the upload URL answers 401.
    assert (
        s.put(
            url,
            data=data[:FRAGMENT],
            headers={"Content-Range": f"bytes 0-{FRAGMENT - 1}/{len(data)}"},
        ).status_code
        == 401
    )
    # A fragment that is not a multiple of 320 KiB (and not the last) is refused.
    bad = anon.put(url, data=data[:1000], headers={"Content-Range": f"bytes 0-999/{len(data)}"})
    assert bad.status_code == 400
    chunk = 3 * FRAGMENT
    pos = 0
    while pos < len(data):
        end = min(pos + chunk, len(data))
        resp = anon.put(
            url, data=data[pos:end], headers={"Content-Range": f"bytes {pos}-{end - 1}/{len(data)}"}
        )
        if end < len(data):
            assert resp.status_code == 202
            assert resp.json()["nextExpectedRanges"] == [f"{end}-"]
            # Resending a fragment already received is 416.
            again = anon.put(
                url,
                data=data[pos:end],
                headers={"Content-Range": f"bytes {pos}-{end - 1}/{len(data)}"},
            )
            assert again.status_code == 416
        pos = end
    assert resp.status_code == 201
    item = resp.json()
    assert item["size"] == len(data)
    assert item["file"]["hashes"]["quickXorHash"] == _qxh(data)
    assert item["fileSystemInfo"]["lastModifiedDateTime"] == "2020-01-02T03:04:05Z"
    assert s.get(tenant.url(f"/users/{upn}/drive/root:/Uploads/big.bin:/content")).content == data
    # Same name again with conflictBehavior fail: 409 nameAlreadyExists.
    conflict = s.post(
        tenant.url(f"/users/{upn}/drive/root:/Uploads/big.bin:/createUploadSession"),
        json={"item": {"@microsoft.graph.conflictBehavior": "fail"}},
    )
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "nameAlreadyExists"


def test_simple_upload_and_conflicts(tenant: RunningTenant, s: requests.Session, upn: str) -> None:
    url = tenant.url(f"/users/{upn}/drive/root:/Simple/a.txt:/content")
    assert s.put(url, data=b"one").status_code == 201
    assert s.put(url, data=b"two").status_code == 200  # replace is the default for PUT
    renamed = s.put(url + "?@microsoft.graph.conflictBehavior=rename", data=b"three").json()
    assert renamed["name"] == "a 1.txt"
    assert s.put(url + "?@microsoft.graph.conflictBehavior=fail", data=b"x").status_code == 409
    versions = get(s, tenant.url(f"/users/{upn}/drive/root:/Simple/a.txt:/versions"))["value"]
    assert [v["size"] for v in versions] == [3, 3]
    folder = s.post(
        tenant.url(f"/users/{upn}/drive/root/children"), json={"name": "Simple", "folder": {}}
    )
    assert folder.status_code == 409
    assert folder.json()["error"]["code"] == "nameAlreadyExists"
    bad = s.put(tenant.url(f"/users/{upn}/drive/root:/Simple/bad:name.txt:/content"), data=b"x")
    assert bad.status_code in (400, 404)
    hostile = "ü" * 200 + ".txt"
    made = s.put(tenant.url(f"/users/{upn}/drive/root:/Simple/{hostile}:/content"), data=b"long")
    assert made.status_code == 201
    assert made.json()["name"] == hostile
    too_big = s.put(
        tenant.url(f"/users/{upn}/drive/root:/Simple/big.bin:/content"),
        data=b"x" * (4 * 1024 * 1024 + 1),
    )
    assert too_big.status_code == 413


def test_attachment_upload_session(tenant: RunningTenant, s: requests.Session, upn: str) -> None:
    msg = s.post(
        tenant.url(f"/users/{upn}/messages"), json={"subject": "with a big attachment"}
    ).json()
    data = os.urandom(3_500_000)
    sess = s.post(
        tenant.url(f"/users/{upn}/messages/{msg['id']}/attachments/createUploadSession"),
        json={"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": len(data)}},
    )
    assert sess.status_code == 201
    url = sess.json()["uploadUrl"]
    anon = tenant.session()
    first = anon.put(
        url, data=data[:2_000_000], headers={"Content-Range": f"bytes 0-1999999/{len(data)}"}
    )
    assert first.status_code == 200
    assert first.json()["nextExpectedRanges"] == ["2000000"]
    last = anon.put(
        url,
        data=data[2_000_000:],
        headers={"Content-Range": f"bytes 2000000-{len(data) - 1}/{len(data)}"},
    )
    assert last.status_code == 201
    assert "Location" in last.headers
    atts = collect(
        s, tenant.url(f"/users/{upn}/messages/{msg['id']}/attachments?$select=id,name,size")
    )
    assert [(a["name"], a["size"]) for a in atts] == [("big.bin", len(data))]
    # Over 3 MB a plain POST is refused.
    too_big = s.post(
        tenant.url(f"/users/{upn}/messages/{msg['id']}/attachments"),
        json={
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": "x.bin",
            "contentBytes": base64.b64encode(data).decode(),
        },
    )
    assert too_big.status_code == 413
    mime = email.message_from_bytes(
        s.get(tenant.url(f"/users/{upn}/messages/{msg['id']}/$value")).content,
        policy=email.policy.default,
    )
    payloads = [a.get_payload(decode=True) for a in mime.iter_attachments()]
    assert hashlib.sha256(payloads[0]).digest() == hashlib.sha256(data).digest()


def test_batch(tenant: RunningTenant, s: requests.Session, upn: str) -> None:
    msg = collect(s, tenant.url(f"/users/{upn}/mailFolders/inbox/messages?$select=id"))[0]
    body = {
        "requests": [
            {"id": "1", "method": "GET", "url": "/users?$top=2"},
            {"id": "2", "method": "GET", "url": "/me"},
            {"id": "3", "method": "GET", "url": f"/users/{upn}/messages/{msg['id']}/$value"},
            {"id": "4", "method": "GET", "url": "/users", "dependsOn": ["2"]},
            {
                "id": "5",
                "method": "POST",
                "url": f"/users/{upn}/mailFolders/drafts/messages",
                "body": {"subject": "batched"},
                "headers": {"Content-Type": "application/json"},
            },
        ]
    }
    resp = s.post(tenant.url("/$batch"), json=body)
    assert resp.status_code == 200
    parts = {p["id"]: p for p in resp.json()["responses"]}
    assert parts["1"]["status"] == 200
    assert len(parts["1"]["body"]["value"]) == 2
    assert "@odata.nextLink" in parts["1"]["body"]
    assert parts["2"]["status"] == 400
    assert parts["2"]["body"]["error"]["code"] == "BadRequest"
    assert parts["3"]["status"] == 200
    assert base64.b64decode(parts["3"]["body"]).startswith(b"From:")
    assert parts["4"]["status"] == 424
    assert parts["5"]["status"] == 201
    assert parts["5"]["body"]["isDraft"] is True
    too_many = {"requests": [{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)]}
    assert s.post(tenant.url("/$batch"), json=too_many).status_code == 400
    dup = {
        "requests": [
            {"id": "a", "method": "GET", "url": "/users"},
            {"id": "A", "method": "GET", "url": "/users"},
        ]
    }
    assert s.post(tenant.url("/$batch"), json=dup).status_code == 400


def test_download_urls_are_short_lived(fresh_tenant: RunningTenant) -> None:
    s = fresh_tenant.graph()
    upn = next(u["userPrincipalName"] for u in fresh_tenant.admin.users() if u["purpose"] == "user")
    # The URL expires at a whole second, so a lifetime of 1 s left it 0 to 1 s:
    # on a loaded machine the first read came too late (CI failed on 401).
    fresh_tenant.admin.settings(download_url_lifetime=3)
    item = next(
        i for i in collect(s, fresh_tenant.url(f"/users/{upn}/drive/root/children")) if "file" in i
    )
    url = item["@microsoft.graph.downloadUrl"]
    assert fresh_tenant.session().get(url).status_code == 200
    time.sleep(3.1)
    expired = fresh_tenant.session().get(url)
    assert expired.status_code == 401
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert fresh_tenant.session().get(tampered).status_code == 401
