"""Small helpers the demo uses to run commands and say what it did."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

COFFER = str(Path(sys.executable).with_name("coffer"))
BOLD = "\033[1m" if sys.stdout.isatty() else ""
DIM = "\033[2m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


def say(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def run(args: list[str], env: dict[str, str], *, show: bool = True, check: bool = True) -> str:
    """Run a command, echo it as a user would type it, and return its output."""
    shown = [("coffer" if a == COFFER else a) for a in args]
    print(f"{DIM}$ {shlex.join(shown)}{RESET}", flush=True)
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if show:
        for line in (proc.stdout + proc.stderr).rstrip().splitlines():
            print(f"  {line}")
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: step failed with exit code {proc.returncode}")
    return proc.stdout


def environment(workdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    env.update(
        COFFER_REPO=str(workdir / "repository"),
        COFFER_PASSWORD_FILE=str(workdir / "password.txt"),
        XDG_CACHE_HOME=str(workdir / "cache"),
    )
    env.update(extra)
    return env
