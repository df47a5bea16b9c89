"""The command line end to end: init, backup, snapshots, ls, restore, and its conventions."""

from __future__ import annotations

from pathlib import Path

from tests.cli.support.helpers import CofferEnv, init, make_tree, new_env, tree_state


def _ready(tmp_path: Path) -> tuple[CofferEnv, Path]:
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "source"
    make_tree(source, big=1)
    return env, source


def test_backup_then_restore_is_exact(tmp_path: Path) -> None:
    env, source = _ready(tmp_path)
    result = env.run("backup", "--path", str(source), "--json")
    summary = result.json()
    assert summary["owners"][0]["stats"]["items_new"] > 40
    assert not summary["partial"]
    target = tmp_path / "restored"
    restore = env.run("restore", "latest", "--to-dir", str(target), "--json").json()
    assert restore["failed"] == 0
    assert tree_state(target) == tree_state(source)
    # Nothing but the tree lands in the target (reports go to the repository).
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in source.iterdir())
    # Twice in a row: nothing is written again.
    again = env.run("restore", "latest", "--to-dir", str(target), "--json").json()
    owner = again["owners"][0]
    assert (owner["created"], owner["replaced"], owner["bytes_written"]) == (0, 0, 0)
    assert owner["unchanged"] > 40


def test_snapshots_and_ls_json_are_pure_json(tmp_path: Path) -> None:
    env, source = _ready(tmp_path)
    env.run("backup", "--path", str(source))
    (source / "new.txt").write_text("new\n")
    env.run("backup", "--path", str(source))
    snaps = env.run("snapshots", "--json").json()
    assert len(snaps) == 2
    assert {"id", "time", "owner", "run", "partial"} <= set(snaps[0])
    assert snaps[0]["time"] < snaps[1]["time"]
    assert "." in snaps[0]["time"]  # sub-second resolution
    assert snaps[1]["stats"]["items_new"] == 1
    assert snaps[1]["stats"]["bytes_read"] == len("new\n")
    listing = env.run("ls", snaps[1]["id"][:10], "nested", "--json").json()
    names = {item["name"] for item in listing}
    assert {"deeper", "mode-600"} <= names
    mode600 = next(i for i in listing if i["name"] == "mode-600")
    assert mode600["mode"] == "600"
    recursive = env.run("ls", "latest", "-R").out.splitlines()
    assert "nested/deeper/" in recursive
    assert any(line.startswith("link-to-file -> empty.txt") for line in recursive)


def test_include_restores_only_matches(tmp_path: Path) -> None:
    env, source = _ready(tmp_path)
    env.run("backup", "--path", str(source))
    target = tmp_path / "only"
    env.run("restore", "latest", "--to-dir", str(target), "--include", "nested/deeper")
    restored = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    assert restored
    assert all(p.startswith("nested") for p in restored)
    assert not (target / "nested" / "mode-600").exists()
    nothing = env.run(
        "restore", "latest", "--to-dir", str(tmp_path / "none"), "--include", "no-such-*"
    )
    assert nothing.code == 0
    assert "nothing matched" in nothing.err


def test_conflict_policies(tmp_path: Path) -> None:
    env, source = _ready(tmp_path)
    env.run("backup", "--path", str(source))
    target = tmp_path / "t"
    env.run("restore", "latest", "--to-dir", str(target))
    (target / "empty.txt").write_text("edited after restore\n")
    skip = env.run("restore", "latest", "--to-dir", str(target), "--json").json()["owners"][0]
    assert skip["skipped"] == 1
    assert (target / "empty.txt").read_text() == "edited after restore\n"
    both = env.run(
        "restore", "latest", "--to-dir", str(target), "--on-conflict", "keep-both", "--json"
    )
    assert both.json()["owners"][0]["kept_both"] == 1
    assert (target / "empty (restored 1).txt").read_bytes() == b""
    replace = env.run(
        "restore", "latest", "--to-dir", str(target), "--on-conflict", "replace", "--json"
    )
    assert replace.json()["owners"][0]["replaced"] == 1
    assert (target / "empty.txt").read_bytes() == b""


def test_several_owners(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    first, second = tmp_path / "first", tmp_path / "second"
    make_tree(first, seed=1)
    make_tree(second, seed=2)
    env.run("backup", "--path", str(first), "--path", str(second))
    snaps = env.run("snapshots", "--json").json()
    assert len(snaps) == 2
    assert len({s["run"] for s in snaps}) == 1  # one run, one snapshot per owner
    ambiguous = env.run("ls", "latest", check=False)
    assert ambiguous.code == 1
    assert "pick one with --owner" in ambiguous.err
    assert env.run("ls", "latest", "--owner", f"*{second}").code == 0
    target = tmp_path / "all"
    env.run("restore", "latest", "--to-dir", str(target))
    kinds = list((target / "folders").iterdir())
    assert len(kinds) == 2
    by_name = {p.name: p for p in kinds}
    first_dir = next(p for name, p in by_name.items() if name.endswith("%2Ffirst"))
    assert tree_state(first_dir) == tree_state(first)


def test_password_rules(tmp_path: Path) -> None:
    env, _source = _ready(tmp_path)
    # The password file ends with a newline: it is stripped, so the password
    # given through the environment without it opens the repository.
    ok = env.run("snapshots", COFFER_PASSWORD="s3cret password", COFFER_PASSWORD_FILE="")
    assert ok.code == 0
    wrong = env.run("snapshots", check=False, COFFER_PASSWORD="nope", COFFER_PASSWORD_FILE="")
    assert wrong.code == 11
    assert "opens none of the key slots" in wrong.err
    assert "Traceback" not in wrong.err
    missing = env.run("snapshots", check=False, COFFER_PASSWORD_FILE="")
    assert missing.code == 1
    assert "no password" in missing.err


def test_errors_are_one_line_with_distinct_codes(tmp_path: Path) -> None:
    env, _source = _ready(tmp_path)
    no_repo = env.run("snapshots", check=False, COFFER_REPO=str(tmp_path / "nowhere"))
    assert no_repo.code == 10
    assert len(no_repo.err.strip().splitlines()) == 1
    again = env.run("init", "--kdf-memory", "8", check=False)
    assert again.code == 1
    assert "already exists" in again.err
    bad_snapshot = env.run("restore", "zzzz", "--to-dir", str(tmp_path / "x"), check=False)
    assert bad_snapshot.code == 1
    assert "Traceback" not in bad_snapshot.err
    not_a_dir = env.run("backup", "--path", str(tmp_path / "missing"), check=False)
    assert not_a_dir.code == 1
    assert not_a_dir.err == (
        f"coffer: cannot read {tmp_path / 'missing'}: No such file or directory\n"
    )
    no_repo_at_all = env.run("snapshots", check=False, COFFER_REPO="")
    assert no_repo_at_all.code == 16
    assert "no repository given" in no_repo_at_all.err


def test_repository_from_configuration_file(tmp_path: Path) -> None:
    env, source = _ready(tmp_path)
    config = tmp_path / "conf" / "coffer.toml"
    config.parent.mkdir()
    config.write_text('repository = "../env/repo"\n')
    result = env.run("-c", str(config), "backup", "--path", str(source), COFFER_REPO="")
    assert result.code == 0
    snaps = env.run("snapshots", "--json", COFFER_REPO="", COFFER_CONFIG=str(config)).json()
    assert len(snaps) == 1
    # -r wins over the environment, which wins over the file: three
    # repositories, told apart by their snapshot counts (1 in the file's).
    other = new_env(tmp_path / "other")
    init(other)
    third = new_env(tmp_path / "third")
    init(third)
    third.run("backup", "--path", str(source))
    third.run("backup", "--path", str(source))

    def count(*args: str, **extra: str) -> int:
        return len(env.run(*args, "snapshots", "--json", COFFER_CONFIG=str(config), **extra).json())

    assert count(COFFER_REPO="") == 1  # the file
    assert count(COFFER_REPO=str(other.repo)) == 0  # the environment over the file
    assert count("-r", str(third.repo), COFFER_REPO=str(other.repo)) == 2  # -r over both
    broken = tmp_path / "broken.toml"
    broken.write_text("repository = [unterminated\n")
    bad = env.run("-c", str(broken), "snapshots", check=False)
    assert bad.code == 16
    assert bad.err.count("\n") == 1  # one line
    assert bad.err.endswith("\n")
    assert str(broken) in bad.err
    assert "not valid TOML" in bad.err


def test_ls_browses_the_layout_the_mount_shows(tmp_path: Path) -> None:
    env, source = _ready(tmp_path)
    env.run("backup", "--path", str(source))
    top = env.run("ls", "/").out.split()
    assert top == ["ids/", "owners/", "snapshots/"]
    owners = env.run("ls", "owners/folders", "--json").json()
    assert len(owners) == 1
    owner_dir = owners[0]["name"]
    assert owner_dir.endswith("%2Fsource")
    history = env.run("ls", f"owners/folders/{owner_dir}").out.splitlines()
    assert any("/latest -> " in line for line in history)
    listing = env.run("ls", f"owners/folders/{owner_dir}/latest", "nested", "--json").json()
    assert {"deeper", "mode-600"} <= {item["name"] for item in listing}
    same = env.run("ls", "latest", "nested", "--json").json()
    assert [i["name"] for i in listing] == [i["name"] for i in same]
    missing = env.run("ls", "owners/folders/nobody", check=False)
    assert missing.code == 1
    assert "Traceback" not in missing.err
