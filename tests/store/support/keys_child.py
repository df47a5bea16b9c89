"""A child process for the kill -9 key-command tests (run with ``python -m``).

crashkey REPO CACHE PASSWORD_FILE OP CRASH_AT WHEN [ARG]
    opens the repository and runs the key command OP (rotate, remove ARG,
    passwd ARG-file, add ARG-file) over a backend that SIGKILLs this process
    just before (WHEN=before) or just after (WHEN=after) its CRASH_AT-th
    write or delete to the storage (0: never; then prints the number of
    mutations). Nothing in the engine knows about this: the fault point is
    the storage wrapper of this test process only.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from store import (
    LocalBackend,
    Repository,
    add_password_slot,
    change_password,
    remove_slot,
    rotate_master_key,
)
from tests.store.support.key_helpers import CHEAP_KDF


class CrashingBackend(LocalBackend):
    """A local backend that kills its own process around its n-th mutation."""

    def __init__(self, root: str, crash_at: int, after: bool) -> None:
        super().__init__(root, durable=False)
        self.crash_at = crash_at
        self.after = after
        self.mutations = 0

    def _before(self) -> None:
        self.mutations += 1
        if self.mutations == self.crash_at and not self.after:
            os.kill(os.getpid(), signal.SIGKILL)

    def _after(self) -> None:
        if self.mutations == self.crash_at and self.after:
            os.kill(os.getpid(), signal.SIGKILL)

    def put(self, key: str, data: bytes) -> None:
        self._before()
        super().put(key, data)
        self._after()

    def delete(self, key: str) -> None:
        self._before()
        super().delete(key)
        self._after()


def crashkey(
    repo_dir: str, cache: str, password_file: str, op: str, crash_at: str, when: str, arg: str = ""
) -> None:
    backend = CrashingBackend(repo_dir, int(crash_at), when == "after")
    password = Path(password_file).read_bytes()
    repo = Repository.open(backend, password, cache_root=Path(cache))
    if op == "rotate":
        rotate_master_key(repo)
    elif op == "remove":
        remove_slot(repo, arg)
    elif op == "passwd":
        change_password(repo, Path(arg).read_bytes(), kdf=CHEAP_KDF)
    elif op == "add":
        add_password_slot(repo, Path(arg).read_bytes(), kdf=CHEAP_KDF)
    else:
        raise SystemExit(f"unknown op {op}")
    print(backend.mutations)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command != "crashkey":
        raise SystemExit(f"unknown command {command}")
    crashkey(*args)
