"""A 10,000-user tenant with lazily generated users (``Simulator(lazy=True)``).

Real parts only: the simulator over HTTPS, the real ``coffer`` CLI into a real
repository. Lazy generation is a simulator detail (docs/simulator.md): the content a
lazy user gets must be exactly what the eager generator writes for that user.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support.helpers import init, new_env
from tools.graphsim.generator import lazy_content, lazy_plan
from tools.graphsim.simulator import DOMAIN, SHAREPOINT_HOST, Simulator, SimulatorError
from tools.graphsim.store import Store
from tools.graphsim.testing import RunningTenant, running_tenant

pytestmark = pytest.mark.sim

USERS = 10_000
START_LIMIT = 20.0  # seconds; eager generation takes ~5 minutes for this tenant
CONTENT_KINDS = ("mailFolder", "message", "contact", "contactFolder", "event", "calendar")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTenant]:
    started = time.monotonic()
    with running_tenant(
        tmp_path_factory.mktemp("big"),
        seed=11,
        scale="tiny",
        users=USERS,
        lazy=True,
        throttling=False,
    ) as running:
        seconds = time.monotonic() - started
        print(f"\nlazy tenant of {USERS} users started in {seconds:.1f} s")
        assert seconds < START_LIMIT
        yield running


def _lazy_left(store: Store) -> int:
    return sum(1 for u in store.iter_live(["user"]) if u.data.get("_lazy"))


def _content(store: Store, owner: str) -> list[tuple[str, str, Any, Any]]:
    """Every live row of `owner` (the user, mail, contacts, calendar, drive), by key."""
    rows = store.conn().execute(
        "SELECT key, kind, data, content FROM items WHERE owner=? AND deleted=0 ORDER BY key",
        (owner,),
    )
    return [tuple(r) for r in rows]


def test_listing_every_user_pages_and_filters_without_generating_content(
    big: RunningTenant,
) -> None:
    store = big.sim.store
    assert store is not None
    graph = big.graph()
    ids: list[str] = []
    url: str | None = big.url("/users?$top=999&$select=id,userPrincipalName")
    pages = 0
    while url:
        page = graph.get(url, timeout=60)
        assert page.status_code == 200, page.text
        body = page.json()
        ids.extend(u["id"] for u in body["value"])
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages >= USERS // 999
    assert len(ids) == len(set(ids)) >= USERS  # the licensed users and the special ones
    one = graph.get(big.url("/users"), params={"$filter": f"id eq '{ids[5000]}'"}, timeout=60)
    assert [u["id"] for u in one.json()["value"]] == [ids[5000]]
    got = graph.get(big.url(f"/users/{ids[5000]}"), timeout=60)
    assert got.status_code == 200
    assert "_lazy" not in got.json()
    # Listing, filtering and reading user objects generated nobody's content.
    assert _lazy_left(store) == USERS
    assert store.count_owned(ids[5000], "message") == 0


def test_a_backup_of_a_few_users_through_the_cli_generates_only_them(
    big: RunningTenant, tmp_path: Path
) -> None:
    store = big.sim.store
    assert store is not None
    users = [u for u in store.iter_live(["user"]) if u.data.get("_lazy")]
    chosen = [users[0], users[4321], users[-1]]
    env = new_env(tmp_path / "coffer")
    init(env)
    config = str(big.sim.state_dir / "coffer.toml")
    args = [a for u in chosen for a in ("--user", str(u.data["userPrincipalName"]))]
    started = time.monotonic()
    report = env.run("backup", "--json", *args, COFFER_CONFIG=config).json()
    print(f"\nbackup of {len(chosen)} lazy users: {time.monotonic() - started:.1f} s")
    assert report["exit_code"] == 0, report
    owners = {o["key"]: o for o in report["owners"]}
    assert set(owners) == {u.key for u in chosen}
    for user in chosen:
        entry = owners[user.key]
        assert entry["status"] == "ok", entry
        assert entry["snapshot"]
        # Every message the simulator generated for the user was read and stored.
        generated = store.count_owned(user.key, "message")
        assert generated > 0
        assert entry["services"]["mail"]["items_new"] == generated
        assert entry["services"]["onedrive"]["items_new"] > 0
    assert _lazy_left(store) == USERS - len(chosen)


def test_lazy_content_is_the_eager_content_and_the_same_on_every_start(
    tmp_path: Path,
) -> None:
    kwargs: dict[str, Any] = {"seed": 23, "scale": "tiny", "users": 12, "throttling": False}
    with running_tenant(tmp_path / "eager", **kwargs) as eager:
        assert eager.sim.store is not None
        ids = [u.key for u in eager.sim.store.iter_live(["user"])]
        expected = {i: _content(eager.sim.store, i) for i in ids}
    seen: list[dict[str, Any]] = []
    for start in ("first", "second"):
        with running_tenant(tmp_path / start, lazy=True, **kwargs) as lazy:
            store = lazy.sim.store
            assert store is not None
            assert sorted(u.key for u in store.iter_live(["user"])) == sorted(ids)
            user = next(u for u in store.iter_live(["user"]) if u.data.get("_lazy"))
            assert [row[1] for row in _content(store, user.key)] == ["user"]  # no content yet
            graph = lazy.graph()
            messages = graph.get(lazy.url(f"/users/{user.key}/messages?$top=50"), timeout=60)
            assert messages.status_code == 200, messages.text
            drive = graph.get(lazy.url(f"/users/{user.key}/drive/root/children"), timeout=60)
            assert drive.status_code == 200, drive.text
            assert _content(store, user.key) == expected[user.key]
            files = {}
            entries = drive.json()["value"]
            for entry in entries:
                # A download URL is signed by this server, for this port: not content.
                url = entry.pop("@microsoft.graph.downloadUrl", None)
                if url:
                    files[entry["id"]] = hashlib.sha256(graph.get(url, timeout=60).content)
            seen.append(
                {
                    "messages": messages.json()["value"],
                    "drive": entries,
                    "files": {k: v.hexdigest() for k, v in files.items()},
                }
            )
    assert seen[0]["messages"]
    assert seen[0]["drive"]
    assert seen[0]["files"]
    assert seen[0] == seen[1]


def test_concurrent_first_requests_generate_a_user_once(big: RunningTenant) -> None:
    store = big.sim.store
    assert store is not None
    user = [u for u in store.iter_live(["user"]) if u.data.get("_lazy")][777]
    graph = big.graph()
    barrier = threading.Barrier(4)

    def first(path: str) -> int:
        barrier.wait()
        return int(graph.get(big.url(f"/users/{user.key}/{path}"), timeout=60).status_code)

    paths = ["messages", "mailFolders", "drive/root/children", "contacts"]
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(first, paths))
    assert codes == [200] * 4
    # The user's rows exist once each (same keys and count as a single generation).
    rows = _content(store, user.key)
    keys = [row[0] for row in rows]
    assert len(keys) == len(set(keys))
    plan = lazy_plan(store, domain=DOMAIN, sharepoint_host=SHAREPOINT_HOST)
    assert plan is not None
    generated, _ = lazy_content(plan, user.key)
    assert sorted(keys) == sorted([user.key, *(r.key or str(r.data["id"]) for r in generated)])


def test_lazy_on_a_directory_generated_up_front_is_refused(tmp_path: Path) -> None:
    with running_tenant(tmp_path / "t", seed=2, scale="tiny", users=3, throttling=False):
        pass
    sim = Simulator(tmp_path / "t", lazy=True, throttling=False)
    with pytest.raises(SimulatorError, match="generated up front, not --lazy"):
        sim.start()
    with running_tenant(tmp_path / "t", seed=2, scale="tiny", throttling=False) as again:
        assert again.sim.store is not None
        assert not any(u.data.get("_lazy") for u in again.sim.store.iter_live(["user"]))
