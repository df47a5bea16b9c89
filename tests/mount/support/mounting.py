"""Run ``coffer mount`` for real in a subprocess and take it down again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.mount.support.corpus import PASSWORD

COFFER = str(Path(sys.executable).with_name("coffer"))


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def coffer(repo: Path, cache: Path, *args: str) -> list[str]:
    return [COFFER, "-r", str(repo), "--cache-dir", str(cache), *args]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    env["COFFER_PASSWORD"] = PASSWORD.decode()
    return env


class Mount:
    """``coffer mount`` of ``repo`` at ``mountpoint`` (created), in the foreground."""

    def __init__(
        self, repo: Path, mountpoint: Path, cache: Path, *options: str, timeout: float = 30
    ) -> None:
        self.mountpoint = mountpoint
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.stderr_path = mountpoint.with_name(mountpoint.name + ".stderr")
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            coffer(repo, cache, "-v", "mount", str(mountpoint), *options),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=environment(),
        )
        deadline = time.monotonic() + timeout
        while not is_mounted(mountpoint):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"coffer mount did not come up:\n{self.stderr}")
            time.sleep(0.05)

    @property
    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def signal(self, signum: int = signal.SIGINT) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 20) -> int:
        return self.process.wait(timeout)

    def stop(self) -> int | None:
        """Unmount however needed; the exit code (None if it had to be killed)."""
        code: int | None = self.process.poll()
        if code is None:
            self.signal(signal.SIGINT)
            try:
                code = self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if is_mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False)
        self._stderr.close()
        return code

    def __enter__(self) -> Mount:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
