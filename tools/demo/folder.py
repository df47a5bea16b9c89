"""The local-folder part of the demo: init, back up, list, restore, verify."""

from __future__ import annotations

import filecmp
import json
import os
import random
from pathlib import Path

from tools.demo.steps import COFFER, run, say


def sample_folder(root: Path) -> None:
    rng = random.Random(2026)
    (root / "reports" / "2026").mkdir(parents=True, exist_ok=True)
    (root / "exports").mkdir(exist_ok=True)
    for month in range(1, 13):
        (root / "reports" / "2026" / f"{month:02d}-summary.txt").write_text(
            f"Monthly summary {month}\n"
            + "figures, commentary and tables\n" * rng.randrange(50, 500)
        )
    (root / "exports" / "mailbox-export.pst").write_bytes(rng.randbytes(3 * 1024 * 1024))
    (root / "exports" / "copy-of-export.pst").write_bytes(
        (root / "exports" / "mailbox-export.pst").read_bytes()
    )
    (root / "README.txt").write_text("Files kept beside the tenant backups.\n")
    (root / "latest-report").symlink_to("reports/2026/12-summary.txt")


def same_tree(left: Path, right: Path) -> bool:
    comparison = filecmp.dircmp(left, right)
    if (
        comparison.left_only
        or comparison.right_only
        or comparison.diff_files
        or comparison.funny_files
    ):
        return False
    for name in comparison.common_files:
        if not filecmp.cmp(left / name, right / name, shallow=False):
            return False
        if os.lstat(left / name).st_mtime_ns != os.lstat(right / name).st_mtime_ns:
            return False
    return all(same_tree(left / d, right / d) for d in comparison.common_dirs)


def demo_folder(workdir: Path, env: dict[str, str]) -> None:
    source = workdir / "sample-folder"
    sample_folder(source)
    say("Create an encrypted repository (the password comes from a file, never the command line)")
    run([COFFER, "init"], env)
    say(f"Back up a local folder ({source})")
    run([COFFER, "backup", "--path", str(source)], env)
    say("Change one file and back up again: only the change is read and stored")
    with open(source / "README.txt", "a") as handle:
        handle.write("A second line.\n")
    run([COFFER, "backup", "--path", str(source)], env)
    say("List the snapshots")
    run([COFFER, "snapshots"], env)
    say("List what the newest snapshot holds")
    run([COFFER, "ls", "latest", "-R", "-l"], env)
    target = workdir / "restored-folder"
    say(f"Restore the newest snapshot into {target}")
    run([COFFER, "restore", "latest", "--to-dir", str(target)], env)
    say("Verify: the restored tree equals the source, byte for byte, with the same times")
    if not same_tree(source, target):
        raise SystemExit("demo: the restored folder differs from the source")
    snapshots = json.loads(run([COFFER, "snapshots", "--json"], env, show=False))
    print(f"  identical: {sum(1 for _ in source.rglob('*'))} items, {len(snapshots)} snapshots")
