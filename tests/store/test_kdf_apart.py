"""Argon2id in a child process (store/pipeline/kdf.py): the same key, the
command never maps Argon2id's memory, no secret leaves over argv or the
environment, and the child does not outlive a killed command."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from store.format.keys import KdfParams
from store.pipeline import kdf
from store.pipeline.kdf import derive_apart
from tests.cli.support.helpers import helpers_of, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_child(pid: int) -> int:
    """The KDF child of ``pid``, once its command line names it (after exec)."""
    wait_for(lambda: bool(helpers_of(pid, "kdfchild.py")), seconds=10)
    return helpers_of(pid, "kdfchild.py")[0]


@pytest.mark.parametrize(
    ("iterations", "lanes", "memory_kib"), [(1, 1, 64), (3, 4, 4096), (2, 3, 1000)]
)
def test_the_child_derives_the_same_key(iterations: int, lanes: int, memory_kib: int) -> None:
    params = KdfParams(iterations, lanes, memory_kib)
    password, salt = os.urandom(20), os.urandom(16)
    assert derive_apart(params, password, salt) == params.derive(password, salt)


_PEAKS = """
import json, resource, sys
from store.format.keys import KdfParams
from store.pipeline.kdf import derive_apart
key = derive_apart(KdfParams(), b"a password", b"0123456789abcdef")
assert key == bytes.fromhex(sys.argv[1])
# VmHWM, not RUSAGE_SELF: the latter keeps the peak of the process image
# before exec (the test runner's, when started by fork or vfork).
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({
    "self": hwm,
    "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
}))
"""


def test_the_command_never_maps_argon2id_memory() -> None:
    """Default parameters (64 MiB): the command's own peak stays below what
    Argon2id alone needs, the child's is above it."""
    expected = KdfParams().derive(b"a password", b"0123456789abcdef")
    out = subprocess.run(
        [sys.executable, "-c", _PEAKS, expected.hex()],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    peaks = json.loads(out)
    argon2_kib = KdfParams().memory_kib
    assert peaks["children"] > argon2_kib
    assert peaks["self"] < argon2_kib, peaks


def test_no_secret_reaches_the_childs_argv_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = b"hunter2-the-password"
    monkeypatch.setenv("COFFER_PASSWORD", password.decode())
    params = KdfParams(iterations=12, lanes=1, memory_kib=65536)  # about a second
    result: list[bytes] = []
    worker = threading.Thread(
        target=lambda: result.append(derive_apart(params, password, b"salt-salt-salt"))
    )
    worker.start()
    try:
        child = _wait_for_child(os.getpid())
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        environ = Path(f"/proc/{child}/environ").read_bytes()
    finally:
        worker.join()
    assert b"PATH=" in environ  # read after exec: not an empty placeholder
    assert password not in cmdline
    assert password not in environ
    assert b"COFFER_PASSWORD" not in environ
    assert result == [params.derive(password, b"salt-salt-salt")]


_LONG = """
from store.format.keys import KdfParams
from store.pipeline.kdf import derive_apart
derive_apart(KdfParams(iterations=200, lanes=1, memory_kib=65536), b"pw", b"saltsaltsalt")
"""


def test_the_child_dies_with_a_killed_command() -> None:
    command = subprocess.Popen([sys.executable, "-c", _LONG], cwd=ROOT)
    try:
        child = _wait_for_child(command.pid)
        os.kill(command.pid, signal.SIGKILL)
        command.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{child}/stat").read_text().split()[2]
            except OSError:
                break  # gone (reaped by init)
            if state == "Z":
                break  # dead, waiting for init to reap it
            time.sleep(0.01)
        else:
            os.kill(child, signal.SIGKILL)
            raise AssertionError("the Argon2id child outlived the killed command")
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()


def test_a_child_that_cannot_run_falls_back_to_this_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kdf, "_CHILD", tmp_path / "missing.py")
    params = KdfParams(iterations=1, lanes=2, memory_kib=256)
    with caplog.at_level(logging.WARNING, logger="store.pipeline.kdf"):
        key = derive_apart(params, b"pw", b"saltsaltsalt")
    assert key == params.derive(b"pw", b"saltsaltsalt")
    assert "Argon2id runs in this process" in caplog.text
