"""The mount part of the demo: browse the backups as files, copy one out, unmount.

For now on the local-folder backup; when the Microsoft 365 backup lands, the
same steps list a mailbox folder and copy out one .eml and one OneDrive file.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import time
from pathlib import Path

from tools.demo.steps import COFFER, run, say


def _mounted(path: Path) -> bool:
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


def demo_mount(workdir: Path, env: dict[str, str], source: Path) -> None:
    mountpoint = workdir / "mnt"
    mountpoint.mkdir(exist_ok=True)
    say(f"Mount every snapshot read-only at {mountpoint} (in the background)")
    run([COFFER, "mount", "--background", str(mountpoint)], env)
    try:
        run(["ls", str(mountpoint), str(mountpoint / "snapshots")], env)
        owners = mountpoint / "snapshots" / "latest" / "folders"
        (owner,) = sorted(owners.iterdir())
        say("Browse the newest run with ordinary tools")
        run(["ls", "-l", str(owner / "reports" / "2026")], env)
        copy = workdir / "copied-out.txt"
        say("Copy one file out with cp -a and compare it with the source")
        run(["cp", "-a", str(owner / "reports" / "2026" / "03-summary.txt"), str(copy)], env)
        original = source / "reports" / "2026" / "03-summary.txt"
        if not filecmp.cmp(original, copy, shallow=False):
            raise SystemExit("demo: the copied file differs from the source")
        if os.stat(original).st_mtime_ns != os.stat(copy).st_mtime_ns:
            raise SystemExit("demo: the copied file lost its modification time")
        print(f"  identical to {original}, time included")
    finally:
        unmount(mountpoint, env)


def unmount(mountpoint: Path, env: dict[str, str]) -> None:
    """Unmount as a user would, and wait until the mount is gone (lazily if stuck)."""
    say("Unmount")
    run(["fusermount3", "-u", str(mountpoint)], env, check=False)
    deadline = time.monotonic() + 10
    while _mounted(mountpoint) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _mounted(mountpoint):
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
