"""One run of a schedule: pre command, ``coffer backup`` in a child process,
retention, post command; or a ``coffer prune`` / ``coffer check --read-data``.

Why a child process: it runs exactly the code of ``coffer backup`` (exit codes,
reports, locks, destinations), and a crash or a memory peak of a run ends with
the child, not with the server. The child gets a minimal environment (PATH,
HOME, LANG, TZ and the XDG/``COFFER_CACHE_DIR``/``COFFER_CONFIG``/``COFFER_REPO``
locations; never ``COFFER_PASSWORD*``), the configuration file by path, and the
repository password through an inherited pipe named by ``--password-file
/dev/fd/N``: never on its command line or in its environment. Tenant secrets
it reads from the configuration's files like any coffer run.

Outcomes: ``succeeded`` (exit 0), ``partial`` (exit 3), ``failed`` (anything
else, a failing pre command included), ``skipped`` (the schedule's previous
run still holds its lock), ``interrupted`` (the server stopped during the run:
its child got SIGINT, cli/schedules/children.py; or a signal ended the child).
A post command's failure is reported but does not change the outcome; it runs
after an interrupted backup too (what a pre command froze must be thawed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cli.schedules.children import Children, Interrupted, was_interrupted
from cli.schedules.config import Schedule
from cli.schedules.hooks import hook_env, run_hook
from cli.schedules.state import StateFile, run_lock
from store import ExitCode, defang

KIND_BACKUP, KIND_PRUNE, KIND_CHECK = "backup", "prune", "check"
_PASSED_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "TZ", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
    "COFFER_CACHE_DIR", "COFFER_CONFIG", "COFFER_REPO", "TMPDIR",
)  # fmt: skip


@dataclass
class RunResult:
    """What a run did; stored as the schedule's ``last_run`` and sent in notifications."""

    schedule: str
    kind: str
    run_id: str
    outcome: str
    started: float
    finished: float = 0.0
    exit_code: int | None = None
    report: str = ""
    owners: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CofferCommand:
    """How to start a ``coffer`` child: the program, the global options naming the
    configuration, cache and repository, and a way to get the password."""

    config: Path | None
    cache_dir: Path | None
    repo: str | None
    password: Callable[[], bytes]
    program: tuple[str, ...] = (sys.executable, "-m", "cli")
    # Where children are registered so stopping the server can interrupt them.
    children: Children = field(default_factory=Children, compare=False)

    def run(
        self, args: list[str], timeout: float | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``coffer <global options> <args>``; output captured. Raises OSError,
        Interrupted (the server is stopping: not started)."""
        argv = [*self.program, "-q"]
        if self.config:
            argv += ["-c", str(self.config)]
        if self.cache_dir:
            argv += ["--cache-dir", str(self.cache_dir)]
        if self.repo:
            argv += ["-r", self.repo]
        read, write = os.pipe()
        try:
            # A password is at most 64 KiB, the pipe's capacity: the write never blocks.
            os.write(write, self.password())
            os.close(write)
            write = -1
            argv += ["--password-file", f"/dev/fd/{read}"]
            env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
            return self.children.run([*argv, *args], env, (read,), timeout)
        finally:
            os.close(read)
            if write >= 0:
                os.close(write)


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return defang(lines[-1][:500]) if lines else ""


def exact_glob(text: str) -> str:
    """A glob matching ``text`` only: an owner named ``data*`` must not make
    retention reach the owner ``data``."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def backup_args(schedule: Schedule) -> list[str]:
    args = ["backup", "--json"]
    for path in schedule.paths:
        args += ["--path", str(path)]
    for user in schedule.users:
        args += ["--user", user]
    for service in schedule.services:
        args += ["--service", service]
    return args


class Runner:
    """Runs schedules' jobs. Thread-safe: each call is independent; the flock in
    the state directory keeps two runs of one schedule apart."""

    def __init__(self, coffer: CofferCommand, state: StateFile) -> None:
        self.coffer = coffer
        self.state = state

    def interrupt(self) -> None:
        """Interrupt every running job's child and start no more (the server stops).
        Returns when they have ended; their runs end ``interrupted``."""
        self.coffer.children.interrupt()

    def run(self, schedule: Schedule, kind: str = KIND_BACKUP) -> RunResult:
        result = RunResult(schedule.name, kind, uuid.uuid4().hex[:16], "failed", time.time())
        with run_lock(self.state.directory, schedule.name) as held:
            if not held:
                result.outcome = "skipped"
                result.messages.append("the previous run of this schedule is still going")
            elif kind == KIND_BACKUP:
                self._backup(schedule, result)
            else:
                self._maintenance(schedule, kind, result)
        result.finished = time.time()
        self.state.update(
            schedule.name if kind == KIND_BACKUP else f"{schedule.name}:{kind}",
            last_run=result.to_json(),
        )
        return result

    def _backup(self, schedule: Schedule, result: RunResult) -> None:
        if schedule.pre is not None:
            pre = run_hook(
                schedule.pre, hook_env(schedule.env, result.run_id, schedule.name, "pending", "")
            )
            if not pre.ok:
                result.messages.append(f"pre command failed, backup skipped: {pre.message}")
                return
        try:
            done = self.coffer.run(backup_args(schedule))
        except OSError as exc:
            result.messages.append(f"coffer backup could not start: {exc.strerror or exc}")
            done = None
        except Interrupted:
            result.outcome = "interrupted"
            result.messages.append("the server stopped before the backup started")
            done = None
        if done is not None:
            result.exit_code = done.returncode
            outcomes: dict[int, str] = {ExitCode.OK: "succeeded", ExitCode.PARTIAL: "partial"}
            result.outcome = outcomes.get(done.returncode, "failed")
            if was_interrupted(done.returncode) or (
                self.coffer.children.stopping.is_set() and done.returncode != ExitCode.OK
            ):
                result.outcome = "interrupted"
                result.messages.append("the backup was interrupted: the server stopped")
            try:
                report = json.loads(done.stdout)
            except ValueError:
                report = {}
            if isinstance(report, dict):
                result.report = str(report.get("report", ""))
                for owner in report.get("owners", []):
                    # kind/name: a user and a team may share a display name.
                    if not isinstance(owner, dict):
                        continue
                    kind = owner.get("owner_kind") or owner.get("kind")
                    name = owner.get("owner") or owner.get("name")
                    if isinstance(kind, str) and isinstance(name, str):
                        result.owners.append(f"{kind}/{name}")
            if (
                done.returncode not in (ExitCode.OK, ExitCode.PARTIAL)
                and result.outcome != "interrupted"
            ):
                result.messages.append(
                    f"coffer backup exited with {done.returncode}: {_last_line(done.stderr)}"
                )
        if result.outcome == "succeeded" and schedule.retention and result.owners:
            args = ["forget"]
            for owner in result.owners:
                args += ["--owner", exact_glob(owner)]
            try:
                forget = self.coffer.run(args)
            except Interrupted:
                result.messages.append("retention not applied: the server stopped")
            else:
                result.messages.append(
                    "retention applied"
                    if forget.returncode == ExitCode.OK
                    else f"retention failed ({forget.returncode}): {_last_line(forget.stderr)}"
                )
        if schedule.post is not None:
            env = hook_env(
                schedule.env, result.run_id, schedule.name, result.outcome, result.report
            )
            post = run_hook(schedule.post, env)
            if not post.ok:
                result.messages.append(f"post command failed: {post.message}")

    def _maintenance(self, schedule: Schedule, kind: str, result: RunResult) -> None:
        args = (
            ["prune"]
            if kind == KIND_PRUNE
            else ["check", "--read-data", "--subset", schedule.check_subset]
        )
        try:
            done = self.coffer.run(args)
        except Interrupted:
            result.outcome = "interrupted"
            return
        result.exit_code = done.returncode
        result.outcome = "succeeded" if done.returncode == ExitCode.OK else "failed"
        if was_interrupted(done.returncode) or self.coffer.children.stopping.is_set():
            result.outcome = "interrupted" if done.returncode != ExitCode.OK else result.outcome
        if result.outcome == "failed":
            result.messages.append(
                f"coffer {kind} exited with {done.returncode}: {_last_line(done.stderr)}"
            )
