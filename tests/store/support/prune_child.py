"""Child processes for the concurrency and kill -9 tests (run with ``python -m``).

crashprune REPO CACHE NOW_NS CRASH_AT [MAX_UNUSED]
    prune with a backend that SIGKILLs this process just before its
    CRASH_AT-th write or delete (0: never; prints the number of writes).
pausedbackup REPO CACHE DIR CONTENT_FILE
    a backup of owner bob that loads the index, writes DIR/ready, waits
    for DIR/go, then adds CONTENT_FILE's bytes (deduplicated against
    whatever the index it loaded said) and commits; writes DIR/snapshot.
backuploop REPO CACHE LOG ROUNDS SEED
    ROUNDS backups of two owners whose files change every round; each
    committed snapshot and the SHA-256 of its files go to LOG (JSON lines).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

from store import BackupRun, LocalBackend, Owner, PruneOptions, Repository, prune

PASSWORD = b"correct horse"


class CrashingBackend(LocalBackend):
    """A local backend that kills its own process at the n-th mutation."""

    def __init__(self, root: str, crash_at: int) -> None:
        super().__init__(root, durable=False)
        self.crash_at = crash_at
        self.mutations = 0

    def _tick(self) -> None:
        self.mutations += 1
        if self.mutations == self.crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def put(self, key: str, data: bytes) -> None:
        self._tick()
        super().put(key, data)

    def delete(self, key: str) -> None:
        self._tick()
        super().delete(key)


def crashprune(
    repo_dir: str, cache: str, now_ns: str, crash_at: str, max_unused: str = "0"
) -> None:
    backend = CrashingBackend(repo_dir, int(crash_at))
    repo = Repository.open(backend, PASSWORD, cache_root=Path(cache))
    now = int(now_ns)
    prune(
        repo,
        PruneOptions(clock=lambda: now, clock_margin_ns=0, max_unused_percent=float(max_unused)),
    )
    print(backend.mutations)


def pausedbackup(repo_dir: str, cache: str, directory: str, content_file: str) -> None:
    repo = Repository.open(LocalBackend(repo_dir, durable=False), PASSWORD, cache_root=Path(cache))
    folder = Path(directory)
    bob = Owner("users", "id-bob", "bob@example.com")
    with BackupRun(repo) as run, run.owner(bob) as session:
        session.full_scope()
        session.add_item("warmup", b"loads the index before the mark")
        (folder / "ready").write_text("ready")
        while not (folder / "go").exists():
            time.sleep(0.02)
        session.add_item("copy", Path(content_file).read_bytes())
        snapshot = session.commit()
    (folder / "snapshot").write_text(snapshot.id_hex)


def backuploop(repo_dir: str, cache: str, log: str, rounds: str, seed: str, stop: str = "") -> None:
    """At least ``rounds`` rounds of backups; with ``stop``, on until that file exists
    (so the parent decides when it has seen enough, whatever the machine's speed)."""
    repo = Repository.open(LocalBackend(repo_dir, durable=False), PASSWORD, cache_root=Path(cache))
    rng = random.Random(int(seed))
    owners = [Owner("users", f"id-{n}", f"{n}@example.com") for n in ("carol", "dave")]
    files: dict[str, dict[str, bytes]] = {o.key: {} for o in owners}
    pool = [rng.randbytes(4096 + 512 * i) for i in range(12)]  # shared content: dedup
    with open(log, "a") as out:
        number = -1
        while True:
            number += 1
            if number >= int(rounds) and (not stop or Path(stop).exists()):
                break
            for owner in owners:
                state = files[owner.key]
                for _ in range(3):
                    name = f"f{rng.randrange(8)}"
                    if name in state and rng.random() < 0.3:
                        del state[name]
                    elif rng.random() < 0.5:
                        # Content seen before (maybe in a pack prune marked or swept
                        # since): the backup must store it again, not dedup into the void.
                        state[name] = rng.choice(pool)
                    else:
                        state[name] = rng.choice(pool) + rng.randbytes(rng.randrange(2000))
                with BackupRun(repo) as run, run.owner(owner) as session:
                    session.full_scope()
                    for name, content in sorted(state.items()):
                        session.add_item(name, content, version=hashlib.sha256(content).hexdigest())
                    snapshot = session.commit()
                digest = {k: hashlib.sha256(v).hexdigest() for k, v in state.items()}
                out.write(
                    json.dumps({"round": number, "snapshot": snapshot.id_hex, "files": digest})
                )
                out.write("\n")
                out.flush()


if __name__ == "__main__":
    commands = {"crashprune": crashprune, "pausedbackup": pausedbackup, "backuploop": backuploop}
    commands[sys.argv[1]](*sys.argv[2:])
