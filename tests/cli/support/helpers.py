"""Running the real ``coffer`` executable in tests."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COFFER = str(Path(sys.executable).with_name("coffer"))


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class CofferEnv:
    """A repository location, a password file and a private cache for CLI runs."""

    root: Path

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
        env.update(
            COFFER_REPO=str(self.repo),
            COFFER_PASSWORD_FILE=str(self.password_file),
            XDG_CACHE_HOME=str(self.root / "cache"),
            XDG_CONFIG_HOME=str(self.root / "config"),
        )
        env.update(extra)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 300, **extra: str) -> Result:
        result = self._complete([COFFER, *args], timeout, extra)
        if check and result.code != 0:
            raise AssertionError(f"coffer {' '.join(args)} exited {result.code}: {result.err}")
        return result

    def python(self, script: str, *args: str, timeout: float = 300) -> Result:
        """``python -c SCRIPT ARGS`` in a fresh interpreter of the tests' Python with
        this environment (a script that audits what running ``cli.main`` loads or
        starts); its exit code is the caller's to check."""
        return self._complete([sys.executable, "-c", script, *args], timeout, {})

    def _complete(self, argv: list[str], timeout: float, extra: dict[str, str]) -> Result:
        proc = subprocess.run(
            argv,
            check=False,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [COFFER, *args],
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )


def new_env(root: Path, password: str = "s3cret password\n") -> CofferEnv:
    root.mkdir(parents=True, exist_ok=True)
    env = CofferEnv(root)
    env.password_file.write_text(password)
    env.password_file.chmod(0o600)
    return env


def init(env: CofferEnv) -> None:
    env.run("init", "--kdf-memory", "8", "--kdf-iterations", "1")


def make_tree(root: Path, *, files: int = 40, seed: int = 1, big: int = 0) -> None:
    """A small folder with text, binary, nested, empty and linked items."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "nested" / "deeper").mkdir(parents=True, exist_ok=True)
    (root / "empty-folder").mkdir(exist_ok=True)
    for i in range(files):
        folder = root / ("nested/deeper" if i % 3 == 0 else "nested" if i % 3 == 1 else "")
        (folder / f"file-{i:04d}.txt").write_bytes(
            f"line {i}\n".encode() * rng.randrange(1, 400) + rng.randbytes(rng.randrange(0, 3000))
        )
    for i in range(big):
        (root / f"big-{i}.bin").write_bytes(rng.randbytes(3 * 1024 * 1024 + i))
    (root / "empty.txt").write_bytes(b"")
    (root / "ünïcödé name.txt").write_text("unicode\n")
    (root / "link-to-file").symlink_to("empty.txt")
    (root / "dangling").symlink_to("does/not/exist")
    (root / "nested" / "mode-600").write_text("private\n")
    (root / "nested" / "mode-600").chmod(0o600)
    os.utime(
        root / "nested" / "mode-600", ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789)
    )


def tree_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything restore promises to keep: types, contents, modes, mtimes, link targets."""
    state: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_symlink():
            state[rel] = ("link", os.readlink(path), st.st_mtime_ns)
        elif path.is_dir():
            state[rel] = ("dir", st.st_mode & 0o7777, st.st_mtime_ns)
        else:
            state[rel] = ("file", path.read_bytes(), st.st_mode & 0o7777, st.st_mtime_ns)
    return state


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def args_for(paths: Sequence[Path]) -> list[str]:
    out: list[str] = []
    for path in paths:
        out += ["--path", str(path)]
    return out


@contextmanager
def small_disk(mount_point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount -o size=``) at ``mount_point``, for the
    full-disk tests; unmounted after."""
    mount_point.mkdir()
    options = f"size={size}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    """Poll ``condition`` every 10 ms; fail the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def helpers_of(pid: int, module: str) -> list[int]:
    """Child processes of ``pid`` running ``python -m module``."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that just ended
            continue
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if module.encode() in cmdline:
                found.append(int(child))
    return found


def all_helpers(module: str) -> list[int]:
    """Every process on the machine running ``python -m module``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if module.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def assert_no_secrets_reach(pid: int, module: str) -> None:
    """The helper ``pid`` got nothing of ``COFFER_*`` in its environment and
    no argument but ``-P -m module``."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(b"COFFER_")]  # the password file's too
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:] == [
        b"-P",
        b"-m",
        module.encode(),
        b"",
    ]


@contextmanager
def reaped(process: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    """``process``, killed if still running when the block ends (a failed
    assertion included), waited for, and its pipes closed."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
