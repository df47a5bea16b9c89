"""Exit codes the README promises, checked on the ``coffer`` process itself."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cli.support.helpers import init, make_tree, new_env


def test_an_io_error_of_the_storage_exits_15_with_one_line(tmp_path: Path) -> None:
    # A real I/O error from the kernel: reading /proc/self/mem at offset 0
    # (an unmapped address) fails with EIO, as a failing disk or a dropped
    # network mount would. EIO is temporary (try again): exit code 15.
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "source"
    make_tree(source, files=2)
    env.run("backup", "--path", str(source))
    config = env.repo / "config"
    saved = config.read_bytes()
    config.unlink()
    os.symlink("/proc/self/mem", config)
    for command in (["snapshots"], ["restore", "latest", "--to-dir", str(tmp_path / "r")]):
        result = env.run(*command, check=False)
        assert result.code == 15, (command, result.err)
        assert result.err.count("\n") == 1
        assert "config" in result.err
        assert "Traceback" not in result.err
    # Nothing was lost: with the storage back, the repository opens.
    config.unlink()
    config.write_bytes(saved)
    assert len(env.run("snapshots", "--json").json()) == 1
