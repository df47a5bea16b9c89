"""Local locks: one backup per owner per machine (flock)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from store.errors import OwnerBusy


class OwnerLock:
    """An exclusive ``flock`` on a lock file, released on close or process death.

    ``wait`` seconds (0: fail at once) before raising OwnerBusy.
    """

    def __init__(self, path: Path, owner_label: str, wait: float = 0.0) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self._fd)
                    raise OwnerBusy(
                        f"another backup of {owner_label} is running on this machine; "
                        "wait for it to finish (or pass --wait)"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
