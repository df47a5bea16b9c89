"""Run the demonstration: ``python -m tools.demo [--workdir DIR]``.

It grows with every capability: local folders (backed up, restored, mounted),
then a simulated Microsoft 365 tenant (backed up, changed by 1%, backed up
again, mounted to copy a mail and a OneDrive file out and compare them with
Graph, then a lost mail folder and OneDrive file restored to where they were),
and finally the web console started in the background on loopback.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tools.demo.console import demo_console
from tools.demo.folder import demo_folder
from tools.demo.m365 import demo_m365
from tools.demo.mount import demo_mount
from tools.demo.steps import environment, say


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--workdir", type=Path, help="keep everything here (default: a temporary directory)"
    )
    parser.add_argument(
        "--scale",
        choices=["small", "medium", "large"],
        default="medium",
        help="size of the simulated Microsoft 365 tenant (default medium)",
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="coffer-demo-"))
    if workdir.exists() and any(workdir.iterdir()):
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    password = workdir / "password.txt"
    password.write_text("demo password, keep it somewhere safe\n")
    password.chmod(0o600)
    env = environment(workdir)
    demo_folder(workdir, env)
    demo_mount(workdir, env, workdir / "sample-folder")
    demo_m365(workdir, env, scale=args.scale)
    say("Done")
    print(f"  everything the demo made is in {workdir}")
    demo_console(workdir, env)


if __name__ == "__main__":
    main()
