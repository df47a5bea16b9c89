"""What every ``coffer`` command does before its work: no child process, malloc
arenas limited. Each case runs in a fresh interpreter (the settings are
process-wide and must come before any thread)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.cli.support.helpers import init, make_tree, new_env

ARENAS = textwrap.dedent(
    """
    import ctypes, os, sys, tempfile, threading
    events = []
    sys.addaudithook(lambda event, args: events.append(event)
                     if event in ("subprocess.Popen", "os.posix_spawn", "os.exec", "os.fork")
                     else None)
    if sys.argv[1] == "limit":
        from cli.malloc import limit_malloc_arenas
        limit_malloc_arenas()
    barrier = threading.Barrier(16)
    keep = []
    def work():
        barrier.wait()  # all threads allocate at once: glibc hands out arenas
        keep.append([bytearray(2000) for _ in range(2000)])
    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    path = tempfile.mktemp()
    handle = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(handle))
    libc.fclose(ctypes.c_void_p(handle))
    report = open(path).read()
    os.unlink(path)
    print(report.count("<heap nr="), ",".join(events))
    """
)


def _arenas(mode: str) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "-c", ARENAS, mode], capture_output=True, text=True, check=True
    ).stdout.split(" ", 1)
    return int(out[0]), out[1].strip()


def test_malloc_arenas_are_limited_without_starting_a_process() -> None:
    limited, events = _arenas("limit")
    assert events == ""  # ctypes.util.find_library would have run ldconfig
    assert 1 <= limited <= 2
    unlimited, _ = _arenas("default")
    assert unlimited > limited  # the check can tell the difference


AUDITED_MAIN = textwrap.dedent(
    """
    import atexit, os, sys
    started = []
    def audit(event, args):
        if event == "subprocess.Popen":  # (executable, args, cwd, env)
            started.append(" ".join(os.fsdecode(a) for a in args[1][1:]))
        elif event in ("os.posix_spawn", "os.exec", "os.fork"):
            started.append(event)
    sys.addaudithook(audit)
    atexit.register(lambda: sys.stderr.write("STARTED:" + ",".join(started) + "\\n"))
    from cli.main import main
    main(sys.argv[1:])
    """
)


def test_a_backup_starts_no_child_process_but_its_stat_ahead_helper(tmp_path: Path) -> None:
    """A no-change backup (and a first one) runs in one process but for the
    stat-ahead helper (sources/folder/statwalker.py) and the Argon2id child
    (store/pipeline/kdfchild.py), both started on purpose: nothing else
    before the walk forks a helper (ldconfig for ctypes.util.find_library
    did, twice)."""
    env = new_env(tmp_path)
    init(env)
    make_tree(tmp_path / "src", files=30)
    for _ in range(2):
        result = env.python(AUDITED_MAIN, "-q", "backup", "--path", str(tmp_path / "src"))
        assert result.code == 0, result.err
        started = next(
            line.removeprefix("STARTED:").split(",")
            for line in result.err.splitlines()
            if line.startswith("STARTED:")
        )
        assert started[0] == "-P -m sources.folder.statwalker", result.err
        assert len(started) == 2, result.err
        flag, script, parent = started[1].split(" ")
        assert (flag, Path(script).name, parent.isdigit()) == ("-I", "kdfchild.py", True)
