"""Serve a mount in its own process (pyfuse3 allows one per process).

    COFFER_PASSWORD=... python -m tests.mount.serve REPO MOUNTPOINT [--background]
        [--refresh SECONDS] [--cache-dir DIR] [--max-inodes N]

Prints ``ready`` on stdout once the filesystem answers; exits with the
MountError's code and its one line on stderr when it cannot mount. Stands in
for ``coffer mount`` until the command line exists.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from mount import MountError, mount_repository
from store import Repository, StoreError, open_backend


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("repo")
    parser.add_argument("mountpoint")
    parser.add_argument("--background", action="store_true")
    parser.add_argument("--refresh", type=float, default=60.0)
    parser.add_argument("--cache-dir")
    parser.add_argument("--max-inodes", type=int, default=200_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    password = os.environ["COFFER_PASSWORD"].encode()
    try:
        repo = Repository.open(
            open_backend(args.repo),
            password,
            cache_root=Path(args.cache_dir) if args.cache_dir else None,
        )
        mount_repository(
            repo,
            args.mountpoint,
            foreground=not args.background,
            refresh_seconds=args.refresh,
            max_inodes=args.max_inodes,
            ready_callback=lambda: print("ready", flush=True),
        )
    except (MountError, StoreError) as exc:
        print(f"coffer: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
