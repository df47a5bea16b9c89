"""A scheduled run started by hand (``coffer schedule run``), interruptible the
way stopping ``coffer serve`` interrupts one.

Ctrl-C or SIGTERM to ``coffer schedule run`` interrupts the run's ``coffer``
child as the server's stop does (cli/schedules/children.py: SIGINT, then
SIGKILL after the grace), waits for it, and returns the run recorded as
``interrupted``. Before, SIGTERM ended the parent at once and left the backup
child running on, orphaned, with the run recorded nowhere.

Not thread-safe: it installs a SIGTERM handler, so only the main thread may
call it.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from cli.schedules.config import Schedule
from cli.schedules.runner import Runner, RunResult
from cli.ui.output import note

POLL_SECONDS = 0.2  # how often the main thread looks up from waiting (signals land between)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_in_foreground(runner: Runner, schedule: Schedule, kind: str) -> RunResult:
    """``runner.run(schedule, kind)`` in a thread, the main thread waiting for it.

    On KeyboardInterrupt (Ctrl-C) or SIGTERM the run's child is interrupted and
    the run ends ``interrupted`` (its state and outcome are recorded as for any
    run). Whatever the run raises is raised here.
    """
    results: list[RunResult] = []
    errors: list[BaseException] = []
    # Waited on instead of Thread.join: a KeyboardInterrupt raised inside join()
    # left the Thread marked as ended while it still ran (seen here on CPython
    # 3.11), and the run's result was read before it existed.
    done = threading.Event()

    def work() -> None:
        try:
            results.append(runner.run(schedule, kind))
        except BaseException as exc:  # handed to the main thread, raised there
            errors.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=work, name=f"schedule-{schedule.name}")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        worker.start()
        try:
            while not done.wait(POLL_SECONDS):
                pass
        except KeyboardInterrupt:
            note(f"interrupting the run of schedule {schedule.name} ...")
            runner.interrupt()
            done.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if errors:
        raise errors[0]
    return results[0]
