"""Starting the stat-ahead helper (sources/folder/statwalker.py) for a folder backup.

Used as a context manager around a whole folder backup, entered before the
repository is opened so the helper walks while the backup starts::

    with StatAhead(paths):
        repo = app.open_repo()
        ...  # backup_folder() for each path

A hint and nothing more: if the helper cannot start, or a root cannot be
opened, the backup runs as it would without it; nothing it does changes
what is backed up. Not thread-safe (one per backup command).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from store.pipeline.spawn import start_helper, stop_helper

HELPER_MODULE = "sources.folder.statwalker"


class StatAhead:
    """The helper for one backup command's folders (see the module's docstring)."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self._roots = list(roots)
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        """The helper's process ID while it runs (None if it did not start)."""
        return None if self._process is None else self._process.pid

    def __enter__(self) -> StatAhead:
        if not self._roots:
            return self
        try:
            self._process, self._sock = start_helper(HELPER_MODULE)
        except OSError:
            return self  # a hint: the backup stats as it would without it
        for root in self._roots:
            try:
                fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue  # backup_folder names the problem
            try:
                socket.send_fds(self._sock, [b"T"], [fd])
            except OSError:
                break  # the helper is gone: nothing to stop
            finally:
                os.close(fd)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the helper's socket and reap it. Idempotent."""
        if self._process is not None and self._sock is not None:
            stop_helper(self._process, self._sock)
            self._sock.close()
        self._process = None
        self._sock = None
