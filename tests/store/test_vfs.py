"""The virtual layout and the VFS over a real repository on disk."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import (
    BackupRun,
    BlobId,
    KdfParams,
    LocalBackend,
    NotCached,
    ObjectInfo,
    Owner,
    PathNotFound,
    Repository,
    Snapshot,
    SnapshotId,
    SnapshotItem,
    TransientBackendError,
    VirtualDir,
    VirtualFS,
    VirtualLink,
)
from store.browse.layout import Layout, identity_tag, owner_component
from store.format.tree import validate_name
from tests.store.support.helpers import Clock

PASSWORD = b"vfs test"
T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z in ns


class FlakyBackend(LocalBackend):
    """A local backend whose listing of snapshots fails while ``down`` is set."""

    down = False

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if self.down and prefix.startswith("snapshots"):
            raise TransientBackendError("backend unreachable (test)")
        return super().list(prefix)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    backend = FlakyBackend(str(tmp_path / "repo"))
    repository = Repository.init(
        backend, PASSWORD, kdf=KdfParams(1, 1, 1024), cache_root=tmp_path / "cache"
    )
    yield repository
    repository.close()


def backup(
    repo: Repository,
    owners: dict[Owner, dict[str, bytes]],
    time_ns: int,
    *,
    partial: set[Owner] | None = None,
) -> list[Snapshot]:
    """One run over ``owners`` (path -> content); ``partial`` ones only checkpoint."""
    out = []
    with BackupRun(repo, time_ns=time_ns) as run:
        for owner, items in owners.items():
            with run.owner(owner) as session:
                session.full_scope()
                for path, content in items.items():
                    key = os.fsencode(path).decode("utf-8", "replace")
                    session.add_item(path, content, mtime_ns=time_ns - 10**9, attrs={"k": key})
                if partial and owner in partial:
                    out.append(session.checkpoint())
                else:
                    out.append(session.commit())
    return out


ALICE = Owner("users", "id-alice", "alice@contoso.com")
BOB = Owner("users", "id-bob", "bob@contoso.com")
SRV = Owner("folders", "host:/srv/data", "host:/srv/data")


# -- naming ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alice@contoso.com", "alice@contoso.com"),
        ("host:/srv/data", "host:%2Fsrv%2Fdata"),
        ("Finance Team", "Finance Team"),
        ("Zoë Ångström", "Zoë Ångström"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("100%", "100%25"),
        ("a\nb", "a%0Ab"),
        ("evil\u202etxt.exe", "evil%E2%80%AEtxt.exe"),  # a right-to-left override
        ("zero\u200bwidth", "zero%E2%80%8Bwidth"),
        ("", "%00"),
    ],
)
def test_owner_component(name: str, expected: str) -> None:
    assert owner_component(name) == expected


# No per-input deadline: wall time on a shared, loaded machine is mostly the other
# processes' (see tests/store/test_safetext.py).
@settings(deadline=None)
@given(st.text())
def test_owner_component_is_one_safe_reversible_component(name: str) -> None:
    result = owner_component(name)
    encoded = result.encode("utf-8", "surrogatepass")
    validate_name(encoded)  # not empty, not . or .., no / or NUL
    assert len(encoded) <= 255
    if len(name.encode("utf-8", "surrogatepass")) <= 80 and name:
        assert unquote(result, errors="surrogatepass") == name
    hidden = any(unicodedata.category(c) in ("Cf", "Cs", "Zl", "Zp", "Cc") for c in name)
    if name and not hidden:
        # Where nothing is hidden, the same name restore gives the owner.
        assert f"users/{result}" == Owner("users", "k", name).path


def fake_snapshot(owner: Owner, time_ns: int, run: str, *, partial: bool = False) -> Snapshot:
    digest = f"{owner.identity}|{time_ns}|{run}|{partial}".encode()
    import hashlib

    return Snapshot(
        owner=owner,
        run=run,
        time_ns=time_ns,
        tree=BlobId(bytes(32)),
        partial=partial,
        snapshot_id=SnapshotId(hashlib.blake2b(digest, digest_size=32).digest()),
    )


def test_layout_names_runs_owners_and_ids() -> None:
    snaps = [
        fake_snapshot(ALICE, T0, "r1" * 16),
        fake_snapshot(SRV, T0 + 5, "r1" * 16),
        fake_snapshot(ALICE, T0 + 3600 * 10**9, "r2" * 16),
        fake_snapshot(BOB, T0 + 7200 * 10**9, "r3" * 16, partial=True),
    ]
    layout = Layout.build(snaps)
    assert list(layout.runs) == ["2025-11-24T16-00-00.000000Z", "2025-11-24T17-00-00.000000Z"]
    assert layout.latest_run == "2025-11-24T17-00-00.000000Z"
    first = layout.runs["2025-11-24T16-00-00.000000Z"]
    assert set(first.members) == {"users", "folders"}
    assert list(first.members["folders"]) == ["host:%2Fsrv%2Fdata"]
    alice = layout.owners["users"]["alice@contoso.com"]
    assert list(alice.snapshots) == ["2025-11-24T16-00-00.000000Z", "2025-11-24T17-00-00.000000Z"]
    assert alice.latest == "2025-11-24T17-00-00.000000Z"
    # The checkpoint is only under ids/; bob has no completed snapshot.
    assert "bob@contoso.com" not in layout.owners["users"]
    assert len(layout.ids) == 4
    assert set(layout.owners) == {"users", "sites", "teams", "groups", "folders"}


def test_layout_times_stay_unique() -> None:
    # Same microsecond: nanoseconds decide. Same nanosecond: the ID is appended.
    a = fake_snapshot(ALICE, T0 + 1, "a" * 32)
    b = fake_snapshot(ALICE, T0 + 2, "b" * 32)
    c = fake_snapshot(ALICE, T0 + 2, "c" * 32)
    layout = Layout.build([a, b, c])
    names = list(layout.owners["users"]["alice@contoso.com"].snapshots)
    assert names[0] == "2025-11-24T16-00-00.000000001Z"
    assert sorted(names[1:]) == sorted(
        [f"2025-11-24T16-00-00.000000002Z~{s.short_id}" for s in (b, c)]
    )
    assert set(layout.runs) == {
        "2025-11-24T16-00-00.000000001Z",
        "2025-11-24T16-00-00.000000002Z~" + "b" * 8,
        "2025-11-24T16-00-00.000000002Z~" + "c" * 8,
    }


def test_layout_owner_collisions_keep_the_oldest_name() -> None:
    # A mailbox deleted and recreated with the same address has a new key;
    # names that differ only in case collide too (copies land on such disks).
    old = Owner("users", "id-old", "carol@contoso.com")
    new = Owner("users", "id-new", "carol@contoso.com")
    upper = Owner("users", "id-upper", "CAROL@contoso.com")
    layout = Layout.build(
        [
            fake_snapshot(new, T0 + 10, "r2" * 16),
            fake_snapshot(old, T0, "r1" * 16),
            fake_snapshot(upper, T0 + 20, "r3" * 16),
        ]
    )
    names = set(layout.owners["users"])
    assert names == {
        "carol@contoso.com",
        "carol@contoso.com" + identity_tag(new.identity),
        "CAROL@contoso.com" + identity_tag(upper.identity),
    }
    assert layout.owners["users"]["carol@contoso.com"].identity == old.identity


def test_layout_tag_never_clashes_with_a_real_name() -> None:
    old = Owner("users", "id-old", "erin@contoso.com")
    new = Owner("users", "id-new", "erin@contoso.com")
    # Someone named exactly what the new owner's tag would make of it.
    mimic = Owner("users", "id-mimic", "erin@contoso.com" + identity_tag(new.identity))
    layout = Layout.build(
        [
            fake_snapshot(mimic, T0 - 10, "r0" * 16),
            fake_snapshot(old, T0, "r1" * 16),
            fake_snapshot(new, T0 + 10, "r2" * 16),
        ]
    )
    names = {h.identity: n for n, h in layout.owners["users"].items()}
    assert names[mimic.identity] == mimic.name
    assert names[old.identity] == "erin@contoso.com"
    assert names[new.identity] == "erin@contoso.com" + identity_tag(new.identity, 16)


def test_layout_long_names_fit_with_their_tag() -> None:
    long_a = Owner("sites", "id-a", "x" * 300)
    long_b = Owner("sites", "id-b", "x" * 300)
    layout = Layout.build(
        [fake_snapshot(long_a, T0, "r1" * 16), fake_snapshot(long_b, T0 + 1, "r2" * 16)]
    )
    names = list(layout.owners["sites"])
    assert len(names) == 2
    assert all(len(n.encode()) <= 255 for n in names)


def test_layout_renamed_owner_shows_its_newest_name() -> None:
    before = Owner("users", "id-dave", "dave@contoso.com")
    after = Owner("users", "id-dave", "david@contoso.com")
    layout = Layout.build(
        [fake_snapshot(before, T0, "r1" * 16), fake_snapshot(after, T0 + 10**9, "r2" * 16)]
    )
    assert list(layout.owners["users"]) == ["david@contoso.com"]
    assert len(layout.owners["users"]["david@contoso.com"].snapshots) == 2
    # Both runs show the owner under the same (current) name.
    assert [list(r.members["users"]) for r in layout.runs.values()] == [
        ["david@contoso.com"],
        ["david@contoso.com"],
    ]


# -- the VFS over a real repository ----------------------------------------


def test_resolve_every_layout_path(repo: Repository) -> None:
    first = backup(repo, {ALICE: {"Inbox/a.eml": b"a"}, SRV: {"x/y.txt": b"y"}}, T0)
    second = backup(repo, {ALICE: {"Inbox/a.eml": b"a2", "Inbox/b.eml": b"b"}}, T0 + 10**9)
    vfs = VirtualFS(repo)
    assert [n for n, _ in vfs.children(vfs.root())] == [b"ids", b"owners", b"snapshots"]

    runs = [n for n, _ in vfs.children(vfs.resolve("snapshots"))]
    assert runs == [b"2025-11-24T16-00-00.000000Z", b"2025-11-24T16-00-01.000000Z", b"latest"]
    latest = vfs.resolve("snapshots/latest")
    assert isinstance(latest, VirtualLink)
    assert latest.target == "2025-11-24T16-00-01.000000Z"

    item = vfs.resolve("snapshots/latest/users/alice@contoso.com/Inbox/a.eml")
    assert isinstance(item, SnapshotItem)
    assert item.snapshot.snapshot_id == second[0].snapshot_id
    assert item.path == "Inbox/a.eml"
    assert vfs.open(item).read() == b"a2"
    assert item.entry.attrs == {"k": "Inbox/a.eml"}

    old = vfs.resolve("owners/users/alice@contoso.com/2025-11-24T16-00-00.000000Z/Inbox/a.eml")
    assert isinstance(old, SnapshotItem)
    assert vfs.open(old).read() == b"a"
    by_link = vfs.resolve("owners/users/alice@contoso.com/latest/Inbox/b.eml")
    assert isinstance(by_link, SnapshotItem)
    srv = vfs.resolve(f"ids/{first[1].id_hex}/x/y.txt")
    assert isinstance(srv, SnapshotItem)
    assert vfs.open(srv).read() == b"y"
    assert [n for n, _ in vfs.children(vfs.resolve("owners"))] == [
        b"folders",
        b"groups",
        b"sites",
        b"teams",
        b"users",
    ]
    assert [n for n, _ in vfs.children(vfs.resolve("owners/folders"))] == [b"host:%2Fsrv%2Fdata"]
    assert isinstance(vfs.resolve("snapshots/2025-11-24T16-00-00.000000Z/users"), VirtualDir)

    for missing in (
        "nothing",
        "snapshots/1999-01-01T00-00-00.000000Z",
        "owners/users/nobody",
        "owners/users/alice@contoso.com/latest/Inbox/zzz.eml",
        "snapshots/latest/users/alice@contoso.com/Inbox/a.eml/under-a-file",
        "ids/" + "0" * 64,
    ):
        with pytest.raises(PathNotFound):
            vfs.resolve(missing)


def test_checkpoints_only_under_ids(repo: Repository) -> None:
    snaps = backup(repo, {ALICE: {"a": b"1"}, BOB: {"b": b"2"}}, T0, partial={BOB})
    vfs = VirtualFS(repo)
    assert [n for n, _ in vfs.children(vfs.resolve("owners/users"))] == [b"alice@contoso.com"]
    assert [n for n, _ in vfs.children(vfs.resolve("snapshots/latest/users"))] == [
        b"alice@contoso.com"
    ]
    checkpoint = vfs.resolve(f"ids/{snaps[1].id_hex}/b")
    assert isinstance(checkpoint, SnapshotItem)
    assert checkpoint.snapshot.partial


def test_children_page_by_page(repo: Repository) -> None:
    names = {f"Inbox/m{i:05d}.eml": b"%d" % i for i in range(3000)}
    backup(repo, {ALICE: names}, T0)
    vfs = VirtualFS(repo)
    inbox = vfs.resolve("owners/users/alice@contoso.com/latest/Inbox")
    assert vfs.count(inbox) == 3000
    seen: list[bytes] = []
    after = None
    while True:
        page = [name for _, (name, _) in zip(range(250), vfs.children(inbox, after), strict=False)]
        if not page:
            break
        seen.extend(page)
        after = page[-1]
    assert seen == sorted(n.rpartition("/")[2].encode() for n in names)
    assert vfs.lookup(inbox, b"m01234.eml").size == 4  # type: ignore[union-attr]


def test_refresh_at_most_every_interval(repo: Repository) -> None:
    backup(repo, {ALICE: {"a": b"1"}}, T0)
    clock = Clock()
    vfs = VirtualFS(repo, refresh_seconds=30, clock=clock)
    assert len(list(vfs.children(vfs.resolve("snapshots")))) == 2  # one run + latest
    backup(repo, {ALICE: {"a": b"2"}}, T0 + 10**9)
    clock.now += 29
    assert len(list(vfs.children(vfs.resolve("snapshots")))) == 2
    assert not vfs.expired()
    clock.now += 1
    assert vfs.expired()
    assert len(list(vfs.children(vfs.resolve("snapshots")))) == 3
    assert vfs.resolve("snapshots/latest") == VirtualLink("2025-11-24T16-00-01.000000Z", T0 + 10**9)


def test_refresh_failure_keeps_the_previous_list(repo: Repository) -> None:
    backup(repo, {ALICE: {"a": b"1"}}, T0)
    clock = Clock()
    vfs = VirtualFS(repo, refresh_seconds=1, clock=clock)
    before = vfs.layout
    assert isinstance(repo.backend, FlakyBackend)
    repo.backend.down = True
    clock.now += 5
    assert vfs.layout is before  # logged, not raised
    repo.backend.down = False
    clock.now += 5
    assert vfs.layout is not before


def test_first_listing_failure_raises(repo: Repository) -> None:
    assert isinstance(repo.backend, FlakyBackend)
    repo.backend.down = True
    with pytest.raises(TransientBackendError):
        VirtualFS(repo).root()


def test_cache_only_raises_instead_of_reading(repo: Repository) -> None:
    backup(repo, {ALICE: {"Inbox/a.eml": b"x" * 1000}}, T0)
    vfs = VirtualFS(repo)
    assert isinstance(vfs.resolve("owners/users/alice@contoso.com/latest"), VirtualLink)
    root = vfs.resolve("owners/users/alice@contoso.com/latest", follow=True)
    assert isinstance(root, SnapshotItem)
    with vfs.cache_only(), pytest.raises(NotCached):
        vfs.lookup(root, b"Inbox")  # the root page was never read
    inbox = vfs.lookup(root, b"Inbox")
    with vfs.cache_only(), pytest.raises(NotCached):
        vfs.lookup(inbox, b"a.eml")  # Inbox's own page is not read yet
    item = vfs.lookup(inbox, b"a.eml")
    with vfs.cache_only():
        assert vfs.lookup(root, b"Inbox") == inbox
        assert vfs.lookup(inbox, b"a.eml") == item
        assert isinstance(item, SnapshotItem)
        with pytest.raises(NotCached):
            vfs.open(item).read()  # nor its content
    assert vfs.open(item).read() == b"x" * 1000
    with vfs.cache_only():
        assert vfs.open(item).read() == b"x" * 1000


def test_describe_is_printable(repo: Repository) -> None:
    backup(repo, {SRV: {os.fsdecode(b"caf\xe9.txt"): b"x"}}, T0)
    vfs = VirtualFS(repo)
    item = vfs.resolve("snapshots/latest/folders/host:%2Fsrv%2Fdata/" + os.fsdecode(b"caf\xe9.txt"))
    assert isinstance(item, SnapshotItem)
    assert item.describe().endswith(":/caf\\xe9.txt")
    item.describe().encode("utf-8")  # no lone surrogates


def test_directory_without_time_shows_the_snapshot_time(repo: Repository) -> None:
    backup(repo, {ALICE: {"Inbox/a.eml": b"a"}}, T0)
    vfs = VirtualFS(repo)
    inbox = vfs.resolve("owners/users/alice@contoso.com/latest/Inbox")
    assert isinstance(inbox, SnapshotItem)
    assert inbox.entry.mtime_ns == 0
    assert inbox.mtime_ns == T0
    mail = vfs.lookup(inbox, b"a.eml")
    assert mail.mtime_ns == T0 - 10**9
