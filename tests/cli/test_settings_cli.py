"""Configuration keys and global options, each shown to take effect through ``coffer``.

(tests/cli/test_documented_settings.py checks that every key and README
option is used by some CLI test; these are the ones no other test used.)
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tests.cli.support.helpers import CofferEnv, init, new_env


def _prune(env: CofferEnv, config: Path | None, *args: str) -> dict[str, Any]:
    options = ["--config", str(config)] if config else []
    result: dict[str, Any] = env.run(*options, "prune", "--json", *args).json()
    return result


def _forget_first(env: CofferEnv) -> None:
    first = env.run("snapshots", "--json").json()[0]["id"]
    env.run("forget", first)


def test_prune_grace_and_max_unused_from_the_configuration(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    rng = random.Random(5)
    folder = tmp_path / "folder"
    folder.mkdir()
    # A pack only the first snapshot uses: marked by the first prune, deleted
    # by the second one only when the grace period allows it.
    (folder / "gone.bin").write_bytes(rng.randbytes(200_000))
    env.run("backup", "--path", str(folder))
    (folder / "gone.bin").unlink()
    (folder / "kept.bin").write_bytes(rng.randbytes(200_000))
    env.run("backup", "--path", str(folder))
    _forget_first(env)
    marked = _prune(env, None)
    assert marked["marked"]
    config = tmp_path / "coffer.toml"
    assert _prune(env, None)["deleted"] == []  # the default grace is 24 h
    config.write_text('[prune]\ngrace = "0h"\n')
    deleted = _prune(env, config)["deleted"]
    assert sorted(key.rpartition("/")[2] for key in deleted) == sorted(marked["marked"])

    # A pack half used after a forget: repacked unless max-unused tolerates it.
    (folder / "half-a.bin").write_bytes(rng.randbytes(200_000))
    (folder / "half-b.bin").write_bytes(rng.randbytes(200_000))
    env.run("backup", "--path", str(folder))
    (folder / "half-a.bin").unlink()
    env.run("backup", "--path", str(folder))
    _forget_first(env)
    _forget_first(env)
    config.write_text('[prune]\nmax-unused = "unlimited"\n')
    assert _prune(env, config, "--dry-run")["repacked"] == []
    config.write_text('[prune]\nmax-unused = "0%"\n')
    assert _prune(env, config, "--dry-run")["repacked"] != []
    config.write_text('[prune]\nmax-unused = "lots"\n')
    bad = env.run("--config", str(config), "prune", check=False)
    assert bad.code == 16
    assert "[prune]" in bad.err


def test_retention_counts_from_the_configuration_and_the_command_line(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(2):
        (folder / "f.txt").write_text(f"version {i}\n")
        env.run("backup", "--path", str(folder))
    config = tmp_path / "coffer.toml"
    config.write_text("[retention]\nkeep-hourly = 1\nkeep-quarterly = 1\nkeep-yearly = 1\n")
    plan = env.run("--config", str(config), "forget", "--dry-run", "--json").json()
    [newest] = [s for s in plan["owners"][0]["snapshots"] if s["keep"]]
    assert {"hourly snapshot", "quarterly snapshot", "yearly snapshot"} <= set(newest["reasons"])
    plan = env.run("forget", "--keep-daily", "1", "--keep-monthly", "1", "--dry-run", "--json")
    [newest] = [s for s in plan.json()["owners"][0]["snapshots"] if s["keep"]]
    assert set(newest["reasons"]) == {"daily snapshot", "monthly snapshot"}


def test_cache_dir_from_the_configuration(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    config = tmp_path / "conf" / "coffer.toml"
    config.parent.mkdir()
    config.write_text('cache_dir = "my-cache"\n')
    env.run("--repo", str(env.repo), "--config", str(config), "snapshots")
    repo_id = json.loads((env.repo / "config").read_bytes().partition(b"\n")[0])["id"]
    # Relative to the file's directory, one directory per repository.
    assert (tmp_path / "conf" / "my-cache" / repo_id).is_dir()


def test_debug_adds_the_traceback_to_the_one_line_error(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    plain = env.run("snapshots", check=False)
    debug = env.run("--debug", "snapshots", check=False)
    assert plain.code == debug.code == 10
    assert plain.err.count("\n") == 1
    assert "Traceback" not in plain.err
    assert "Traceback" in debug.err
    assert plain.err.strip() in debug.err
