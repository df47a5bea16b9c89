"""Pre and post commands of a schedule: an argv run without a shell, with a
timeout and a minimal environment.

The environment is exactly: ``COFFER_RUN_ID``, ``COFFER_SCHEDULE``,
``COFFER_STATUS`` (``pending`` for a pre command; the run's outcome for a post
command), ``COFFER_REPORT`` (the run's report key in the repository, empty if
none), plus the variables the schedule's ``env`` names, copied from the
server's environment. Nothing else: not the repository password, not
``COFFER_PASSWORD*``, not tenant secrets (``env`` may not name ``COFFER_*``).
``argv[0]`` is looked up in the server's PATH before the command starts.
No file descriptor but standard input (/dev/null), output and error is inherited.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from cli.schedules.config import Hook

OUTPUT_KEPT = 2000  # characters of a hook's output kept for the report


@dataclass(frozen=True)
class HookResult:
    ok: bool
    message: str  # one line for the report: why it failed, or its exit status


def hook_env(
    names: tuple[str, ...], run_id: str, schedule: str, status: str, report: str
) -> dict[str, str]:
    env = {name: os.environ[name] for name in names if name in os.environ}
    env.update(
        COFFER_RUN_ID=run_id, COFFER_SCHEDULE=schedule, COFFER_STATUS=status, COFFER_REPORT=report
    )
    return env


def run_hook(hook: Hook, env: dict[str, str]) -> HookResult:
    """Run ``hook`` to completion or its timeout (then it is killed). Never raises
    for the command's own failures; the result says what happened."""
    program = shutil.which(hook.argv[0]) or hook.argv[0]
    try:
        done = subprocess.run(
            [program, *hook.argv[1:]],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=hook.timeout,
            close_fds=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return HookResult(False, f"{hook.argv[0]} timed out after {hook.timeout:g} s")
    except OSError as exc:
        return HookResult(False, f"{hook.argv[0]} could not start: {exc.strerror or exc}")
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip()[-OUTPUT_KEPT:]
        last = tail.splitlines()[-1] if tail else ""
        return HookResult(
            False, f"{hook.argv[0]} exited with {done.returncode}: {last}".rstrip(": ")
        )
    return HookResult(True, f"{hook.argv[0]} succeeded")
