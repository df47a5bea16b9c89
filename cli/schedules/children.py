"""The ``coffer`` child processes of running scheduled jobs, so that stopping the
server interrupts them instead of leaving them to run on as orphans.

:meth:`Children.interrupt` does what Ctrl-C does to ``coffer backup`` run by
hand: SIGINT to each child (it stops between items, keeps what it stored and
exits 130), then SIGKILL to any child still alive after ``grace`` seconds. After
it, no new child starts (:class:`Interrupted`). Thread-safe.

A child ended by SIGINT or SIGTERM (exit 130, or killed by the signal: a
service manager that signals the whole control group reaches the child
before the server) counts as interrupted too: :func:`was_interrupted`.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence

from store import ExitCode

INTERRUPT_GRACE = 15.0  # seconds a child gets to stop cleanly before SIGKILL


class Interrupted(RuntimeError):
    """The server is stopping: no new child is started."""


def was_interrupted(returncode: int) -> bool:
    return returncode in (ExitCode.INTERRUPTED, -signal.SIGINT, -signal.SIGTERM)


class Children:
    """The registry (module docstring)."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        pass_fds: tuple[int, ...],
        timeout: float | None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``argv`` to its end, output captured, as subprocess.run does. Raises
        OSError (it cannot start), subprocess.TimeoutExpired (it was killed at
        ``timeout``), Interrupted (the server is stopping: nothing started)."""
        with self._lock:
            if self.stopping.is_set():
                raise Interrupted
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=pass_fds,
            )
            self._procs.add(proc)
        try:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
            return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        finally:
            with self._lock:
                self._procs.discard(proc)
            if proc.poll() is None:  # an exception in communicate(): never leave it behind
                proc.kill()
                proc.wait()

    def running(self) -> int:
        with self._lock:
            return len(self._procs)

    def interrupt(self, grace: float = INTERRUPT_GRACE) -> None:
        """SIGINT every child, SIGKILL those alive after ``grace`` s; start no more.
        Returns when every child has ended (or was killed)."""
        with self._lock:
            self.stopping.set()
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
