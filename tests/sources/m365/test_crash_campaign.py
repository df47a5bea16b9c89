"""Crash consistency of tenant backups, in the spirit of kopia's and restic's recovery
tests: a backup killed with SIGKILL at random moments and then run to the end holds
exactly what an uninterrupted backup of the same tenant holds, file for file and byte
for byte, and ``check --read-data`` finds nothing wrong.

Every run is the real ``coffer`` executable against the simulator over HTTPS. Two
repositories back up the same tenant: one without interruption (the reference), one
killed several times (``--checkpoint-interval`` short, downloads slowed a little, and
each kill coming while the simulator holds a content read the seed picked, so it
always lands mid-run) and then resumed. Both latest snapshots are restored with
``coffer restore latest --to-dir`` and the trees compared: every file's path and
bytes. Nothing is excluded: Coffer's renderings (.html, .ics, .vcf) are made from
the Graph JSON alone, so an interrupted backup has no excuse for any difference.
(Entry attributes are not compared: ``--to-dir`` writes files only.)

- fast (``make test``): the defect reproduced deterministically (a checkpoint that
  holds items without their renderings), and one seed of kills (seed 3 found the
  missing ``.ics`` on main);
- slow (``make test-full``): many seeds; each service alone; kills during the
  incremental run after churn; kills during ``restore --to original`` (nothing
  missing, nothing twice); the same tree after a throttling storm with dropped
  connections.

The kill moments (which read is held, how long after) come from a seed. A failing seed
prints how to replay it, e.g.

    COFFER_CRASH_SEED=7 .venv/bin/pytest -n 0 -p no:cacheprovider \
        'tests/sources/m365/test_crash_campaign.py::test_kill_9_three_times_then_resume_matches[7]'
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sources.m365.services import SERVICES
from store import BackupRun, latest_per_owner
from tests.cli.support.helpers import CofferEnv, files_of, init, new_env
from tests.cli.test_m365_restore import _state as graph_state
from tests.cli.test_m365_restore import _wipe as wipe
from tests.sources.m365.support.helpers import open_repo
from tests.sources.m365.support.restoring import Graph
from tests.sources.m365.support.tenant import Setup
from tools.graphsim.testing import AdminClient, RunningTenant, running_tenant

pytestmark = pytest.mark.sim

# Read at import: the autouse fixture of tests/conftest.py clears COFFER_* variables.
_REPLAY = os.environ.get("COFFER_CRASH_SEED")
FAST_SEEDS = [int(_REPLAY)] if _REPLAY else [3]
SLOW_SEEDS = [int(_REPLAY)] if _REPLAY else [1, 2, *range(4, 14)]
SLOW_SERVICE_SEEDS = [int(_REPLAY)] if _REPLAY else [21, 22]

# What slows the killed runs: content downloads (files, MIME) and Teams replies, the
# reads that make each service last long enough to be killed in the middle, and the
# contacts' delta pages (contacts have no content to download). A kill comes while one
# of these is held.
SLOW = r"(/_dl/|/\$value|/content|/replies|/attachments|/contacts/delta)"
RENDERINGS = (".html", ".ics", ".vcf")
# How long the simulator holds the read a killed try is waiting on when the kill comes:
# far longer than noticing the hold and the moment after it take on a loaded machine,
# and shorter than the client's read timeout (300 s).
HOLD = 60.0
# A restore's held write is carried out when the hold ends, and the next try must wait
# for that: a shorter hold.
WRITE_HOLD = 6.0


def _why(out: str) -> str:
    """What a backup report says went wrong: its problems and the owners that did
    not end ok (pytest cuts the whole report short)."""
    try:
        report = json.loads(out)
    except ValueError:
        return ""
    if not isinstance(report, dict):
        return ""
    owners = [
        {k: o.get(k) for k in ("kind", "name", "status", "error", "services")}
        for o in report.get("owners", [])
        if isinstance(o, dict) and o.get("status") not in ("ok", "not_applicable")
    ]
    return f"\nproblems: {report.get('problems')}\nowners not ok: {owners}"


@dataclass
class Campaign:
    tenant: RunningTenant
    root: Path

    @property
    def config(self) -> str:
        return str(self.root / "sim" / "coffer.toml")

    def repo(self, name: str) -> CofferEnv:
        env = new_env(self.root / name)
        if not env.repo.exists():
            init(env)
        return env

    def coffer(self, env: CofferEnv, *args: str, timeout: float = 600) -> dict[str, Any]:
        result = env.run(*args, "--json", check=False, timeout=timeout, COFFER_CONFIG=self.config)
        assert result.code == 0, (
            f"coffer {' '.join(args)} exited {result.code}: {result.err}{_why(result.out)}"
        )
        report: dict[str, Any] = result.json()
        return report


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    """One small tenant (3 users, 2 sites, 2 teams; rate limits off) for the module.
    Tests that change it back up a fresh reference after the change."""
    root = tmp_path_factory.mktemp("crash")
    with running_tenant(root / "sim", scale="small", seed=3, throttling=False) as tenant:
        yield Campaign(tenant, root)


def _replay(request: pytest.FixtureRequest, seed: int) -> str:
    return (
        f"crash seed {seed}; replay with: COFFER_CRASH_SEED={seed} .venv/bin/pytest -n 0 "
        f"-p no:cacheprovider '{request.node.nodeid}'"
    )


@dataclass
class Crash:
    """A seed's random source; inside :meth:`replayable` a failure names the seed."""

    seed: int
    rng: random.Random
    replay: str

    @contextlib.contextmanager
    def replayable(self) -> Iterator[random.Random]:
        try:
            yield self.rng
        except BaseException as exc:
            exc.add_note(self.replay)
            raise


@pytest.fixture
def crash(request: pytest.FixtureRequest) -> Crash:
    seed = int(request.param)
    replay = _replay(request, seed)
    print(replay)  # shown with the captured output of a failing test
    return Crash(seed, random.Random(seed), replay)


def content_reads(campaign: Campaign, run: Any) -> int:
    """How many reads matching ``SLOW`` ``run()`` made (a rule that delays nothing counts
    them). The killed runs pick their kill moments from this count."""
    admin = campaign.tenant.admin
    admin.inject_faults({"kind": "slow", "delay": 0, "match": SLOW})
    try:
        run()
        return sum(int(rule["fired"]) for rule in admin.faults())
    finally:
        admin.clear_faults()


def killed_then_resumed(
    campaign: Campaign,
    env: CofferEnv,
    rng: random.Random,
    extra: tuple[str, ...] = (),
    *,
    reads: int,
    kills: int = 3,
) -> list[str]:
    """Run ``coffer backup`` and SIGKILL it ``kills`` times in the middle, then run it to
    the end. Returns what happened to each try (for failure messages).

    The kill moment comes from the run's progress, not from the clock (on a loaded
    machine all three tries of a seed once finished before their moments): ``reads`` is
    how many content reads (``SLOW``) the same run made undisturbed
    (:func:`content_reads`). A try's reads are slowed a little and the seed picks one,
    the k-th, which the simulator holds for ``HOLD`` seconds: while it is held the run
    cannot finish. A further moment the seed picks later (other threads go on, and
    write checkpoints) the try is killed. The first try starts from nothing and makes
    all ``reads`` reads, and k <= 0.8 * reads, so it is always killed. A later try still
    has at least ``reads`` minus the reads all tries so far started (what is not in a
    checkpoint is read again), and k is picked below that; when nothing is left no try
    starts. A try that ends before its k-th read (it must then succeed) is told in the
    story and counts neither as a kill nor as a failure."""
    admin = campaign.tenant.admin
    story: list[str] = []
    done = 0  # content reads the tries so far started
    bases: list[str] = []  # warnings of a base naming blobs in no index
    for n in range(kills):
        left = reads - done
        if left < 1:
            story.append(f"try {n}: not started: the tries so far made all {reads} reads")
            break
        target = 1 + int(rng.random() * 0.8 * left)
        interval = rng.choice((0.3, 0.5, 1.0))
        delay = rng.choice((0.05, 0.1, 0.2))
        linger = rng.uniform(0.0, 1.0)
        admin.inject_faults(
            {"kind": "slow", "delay": delay, "match": SLOW, "count": target - 1},
            {"kind": "slow", "delay": HOLD, "match": SLOW, "count": 1},
            {"kind": "slow", "delay": delay, "match": SLOW},
        )
        args = ("backup", "--checkpoint-interval", str(interval), *extra)
        proc = env.popen(*args, COFFER_CONFIG=campaign.config)
        try:
            held = _held(admin, proc)
            if held:
                time.sleep(linger)
            if held and proc.poll() is None:  # (it cannot end while its read is held)
                os.kill(proc.pid, signal.SIGKILL)
                _, err = proc.communicate(timeout=60)
                bases += _base_warnings(err)
                story.append(
                    f"try {n}: killed {linger:.2f}s after read {target} (of at least {left})"
                    f" was held (interval {interval}, slow {delay})"
                )
            else:
                out, err = proc.communicate(timeout=60)
                bases += _base_warnings(err)
                story.append(f"try {n}: ended before read {target} (exit {proc.returncode})")
                assert proc.returncode == 0, (
                    f"coffer {' '.join(args)} exited {proc.returncode}: {err[-2000:]}"
                    f"\n{out[-2000:]}\n{story}"
                )
            done += sum(int(rule["fired"]) for rule in admin.faults())
        finally:
            admin.clear_faults()
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=60)
    print("\n".join(story))  # shown with a test's captured output (-rP)
    assert any("killed" in line for line in story), story
    report = campaign.coffer(env, "backup", *extra)
    assert report["status"] == "ok", report
    # A resumed run recovers from a checkpoint naming blobs in no index (it reads them
    # again, store/backup/audit.py), but a kill must never leave one: that is the
    # writer's durability promise (docs/engine.md), which this campaign tests.
    bases += [w for owner in report["owners"] for w in owner.get("warnings", [])]
    assert bases == [], (bases, story)
    return story


def _base_warnings(err: str) -> list[str]:
    """The lines of a run's stderr saying its base names blobs in no index."""
    return [line for line in err.splitlines() if "this backup builds on" in line]


def _held(admin: AdminClient, proc: subprocess.Popen[str]) -> bool:
    """Wait until the simulator holds the try's chosen read (True: the run cannot end
    before ``HOLD`` seconds) or the run has ended (False)."""
    deadline = time.monotonic() + 600
    while proc.poll() is None:
        if int(admin.faults()[1]["fired"]):
            return True
        assert time.monotonic() < deadline, "the run neither ended nor reached its read"
        time.sleep(0.05)
    return False


def restored(campaign: Campaign, env: CofferEnv, name: str) -> dict[str, bytes]:
    """The latest snapshot of every owner, restored by ``coffer restore --to-dir``."""
    target = campaign.root / f"restored-{name}-{time.monotonic_ns()}"
    campaign.coffer(env, "restore", "latest", "--to-dir", str(target))
    files = files_of(target)
    assert files, "nothing was restored"
    return files


def differences(want: dict[str, bytes], have: dict[str, bytes]) -> list[str]:
    """What ``have`` lacks, has in excess, or has with other bytes (sorted, at most 20)."""
    out = [f"missing {p}" for p in sorted(set(want) - set(have))]
    out += [f"extra {p}" for p in sorted(set(have) - set(want))]
    out += [f"differs {p}" for p in sorted(set(want) & set(have)) if want[p] != have[p]]
    return out[:20]


def assert_same_backup(
    campaign: Campaign, reference: CofferEnv, crashed: CofferEnv, story: list[str]
) -> None:
    want = restored(campaign, reference, "reference")
    have = restored(campaign, crashed, "crashed")
    assert differences(want, have) == [], story
    check = crashed.run("check", "--read-data", check=False, COFFER_CONFIG=campaign.config)
    assert check.code == 0, (check.err, story)
    # Every rendering is beside its item (what the issue found missing).
    for path in have:
        if path.endswith(RENDERINGS):
            stem = path.rsplit(".", 1)[0]
            assert f"{stem}.json" in have, path


# -- the defect, reproduced deterministically ----------------------------------------------


def test_a_checkpoint_holding_items_without_their_renderings_is_completed(setup: Setup) -> None:
    """A checkpoint as a kill left it before item groups: each Teams thread, event and
    contact has its .json but not its .html/.ics/.vcf (and no attachments), and no
    sync state yet (the services had not finished). The resumed run stores them all."""
    setup.backup()
    repo = open_repo(setup.repo, setup.cache)
    try:
        reference: dict[str, dict[str, bytes]] = {}
        dropped = 0
        run = BackupRun(repo)
        for snap in latest_per_owner(repo.list_snapshots()):
            reader = repo.reader(snap)
            files = {p: e for p, e in reader.walk("") if e.is_file}
            reference[snap.owner.identity] = {p: reader.open(e).read() for p, e in files.items()}
            session = run.owner(snap.owner, source=snap.source)
            for path, entry in files.items():
                if entry.attrs.get("type") in ("rendering", "eventAttachment"):
                    session.remove(path)
                    dropped += 1
            session.set_sync_state(None)
            session.checkpoint()
            session.close()
        run.close()
    finally:
        repo.close()
    assert dropped > 10
    report = setup.backup()
    assert report["status"] == "ok"
    repo = open_repo(setup.repo, setup.cache)
    try:
        assert not any(s.partial for s in repo.list_snapshots())
        problems: list[str] = []
        for snap in latest_per_owner(repo.list_snapshots()):
            reader = repo.reader(snap)
            have = {p: reader.open(e).read() for p, e in reader.walk("") if e.is_file}
            found = differences(reference[snap.owner.identity], have)
            problems += [f"{snap.owner.name}: {d}" for d in found[:3]]
        assert problems == []
    finally:
        repo.close()


# -- the campaign ------------------------------------------------------------------------


@pytest.mark.parametrize("crash", FAST_SEEDS, indirect=True)
def test_kill_9_three_times_then_resume_matches(campaign: Campaign, crash: Crash) -> None:
    with crash.replayable() as rng:
        reference = campaign.repo(f"reference-{crash.seed}")
        reads = content_reads(campaign, lambda: campaign.coffer(reference, "backup"))
        crashed = campaign.repo(f"crashed-{crash.seed}")
        story = killed_then_resumed(campaign, crashed, rng, reads=reads)
        assert_same_backup(campaign, reference, crashed, story)


@pytest.mark.slow
@pytest.mark.parametrize("crash", SLOW_SEEDS, indirect=True)
def test_many_seeds_kill_9_then_resume_matches(campaign: Campaign, crash: Crash) -> None:
    with crash.replayable() as rng:
        reference = campaign.repo(f"reference-many-{crash.seed}")
        reads = content_reads(campaign, lambda: campaign.coffer(reference, "backup"))
        crashed = campaign.repo(f"crashed-many-{crash.seed}")
        story = killed_then_resumed(campaign, crashed, rng, kills=rng.randint(2, 5), reads=reads)
        assert_same_backup(campaign, reference, crashed, story)


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("crash", SLOW_SERVICE_SEEDS, indirect=True)
def test_each_service_killed_then_resumed_matches(
    campaign: Campaign, crash: Crash, service: str
) -> None:
    """One service at a time, so every kill lands inside it."""
    with crash.replayable() as rng:
        reference = campaign.repo(f"reference-{service}-{crash.seed}")
        extra = ("--service", service)
        reads = content_reads(campaign, lambda: campaign.coffer(reference, "backup", *extra))
        crashed = campaign.repo(f"crashed-{service}-{crash.seed}")
        story = killed_then_resumed(campaign, crashed, rng, extra, reads=reads)
        assert_same_backup(campaign, reference, crashed, story)


@pytest.mark.slow
@pytest.mark.parametrize("crash", SLOW_SERVICE_SEEDS, indirect=True)
def test_kill_9_during_the_incremental_run_after_churn(campaign: Campaign, crash: Crash) -> None:
    """Both repositories hold the tenant as it was; it changes (new, changed, moved and
    deleted items in every service); the crashed repository's incremental run is
    killed and resumed, and ends where the reference's uninterrupted one does."""
    with crash.replayable() as rng:
        reference = campaign.repo(f"reference-churn-{crash.seed}")
        crashed = campaign.repo(f"crashed-churn-{crash.seed}")
        campaign.coffer(reference, "backup")
        campaign.coffer(crashed, "backup")
        changes = campaign.tenant.admin.churn(10, seed=crash.seed)
        assert changes
        reads = content_reads(campaign, lambda: campaign.coffer(reference, "backup"))
        story = killed_then_resumed(campaign, crashed, rng, reads=reads)
        assert_same_backup(campaign, reference, crashed, story)


@pytest.mark.slow
def test_a_throttling_storm_and_dropped_connections_give_the_same_tree(
    campaign: Campaign,
) -> None:
    """30% of requests throttled (429, 503) and 5% of connections dropped before or in
    the middle of the answer: the backup still equals an undisturbed one."""
    reference = campaign.repo("reference-storm")
    campaign.coffer(reference, "backup")
    stormed = campaign.repo("stormed")
    admin = campaign.tenant.admin
    admin.inject_faults(
        {"kind": "429", "rate": 0.3, "retry_after": 1},
        {"kind": "503", "rate": 0.02, "retry_after": 1},
        {"kind": "drop", "rate": 0.025},
        {"kind": "drop_mid", "rate": 0.025},
        seed=18,
    )
    try:
        campaign.coffer(stormed, "backup", timeout=900)
        fired = {rule["kind"]: rule["fired"] for rule in admin.faults()}
    finally:
        admin.clear_faults()
    assert fired["429"] > 10
    assert fired["drop"] + fired["drop_mid"] > 3
    assert_same_backup(campaign, reference, stormed, [f"faults fired: {fired}"])


@pytest.mark.slow
@pytest.mark.parametrize("crash", SLOW_SERVICE_SEEDS, indirect=True)
def test_kill_9_during_restore_to_original_then_resume(campaign: Campaign, crash: Crash) -> None:
    """A user's mail and files are deleted and restored with ``--to original``; the
    restore is killed at random moments, then run to the end: nothing is missing and
    nothing is there twice (items by folder and internet message ID, files by path,
    size and time), and one more run creates nothing."""
    with crash.replayable() as rng:
        env = campaign.repo(f"restore-{crash.seed}")
        campaign.coffer(env, "backup")
        g = Graph(campaign.tenant)
        user = g.user(index=crash.seed % 3)
        before = graph_state(g, user)
        wipe(g, user)
        assert graph_state(g, user) != before
        admin = campaign.tenant.admin
        args = ["restore", "latest", "--to", "original", "--owner", user["userPrincipalName"]]
        args += ["--service", "mail", "--service", "onedrive"]
        story: list[str] = []
        for n in range(3):
            # The kill comes while the simulator holds the k-th write of the try (a
            # moment from the clock once let tries finish first): every item still
            # missing needs at least one write, so k below that many always comes.
            missing = sum((before[key] - graph_state(g, user)[key]).total() for key in before)
            if missing < 1:
                story.append(f"try {n}: not started: nothing is missing")
                break
            target = 1 + int(rng.random() * 0.8 * missing)
            linger = rng.uniform(0.0, 1.0)
            writes = {"kind": "slow", "methods": ["POST", "PUT"]}
            admin.inject_faults(
                {**writes, "delay": 0.4, "count": target - 1},
                {**writes, "delay": WRITE_HOLD, "count": 1},
                {**writes, "delay": 0.4},
            )
            proc = env.popen(*args, COFFER_CONFIG=campaign.config)
            try:
                if _held(admin, proc):
                    held = time.monotonic()
                    time.sleep(linger)
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.communicate(timeout=60)
                    story.append(f"try {n}: killed {linger:.2f}s after write {target} was held")
                    # The held write is carried out when its hold ends (as Graph finishes
                    # a request whose client died): before the next try, as a write in
                    # flight at the kill would be.
                    time.sleep(max(0.0, held + WRITE_HOLD + 1.0 - time.monotonic()))
                else:
                    proc.communicate(timeout=60)
                    story.append(f"try {n}: ended before write {target} ({proc.returncode})")
            finally:
                admin.clear_faults()
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate(timeout=60)
        print("\n".join(story))
        assert any("killed" in line for line in story), story
        report = campaign.coffer(env, *args)
        assert report["totals"]["failed"] == 0, (report, story)
        after = graph_state(g, user)
        for key in before:
            assert after[key] == before[key], (
                key,
                after[key] - before[key],
                before[key] - after[key],
                story,
            )
        again = campaign.coffer(env, *args)
        assert again["totals"]["created"] == 0, story
