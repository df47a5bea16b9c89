"""What a folder backup imports: nothing of Microsoft 365's Graph client,
msal, requests or rich (issue 14: they were about half of a no-change
``coffer backup --path``'s start-up; sources/m365/__init__.py and cli/ui load
them on first use). Each case runs a real ``coffer`` in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.cli.support.helpers import CofferEnv, init, make_tree, new_env

# Module prefixes a folder backup never needs.
LAZY = (
    "sources.m365.graph.client",
    "sources.m365.graph.auth",
    "sources.m365.backup",
    "sources.m365.settings",
    "msal",
    "requests",
    "urllib3",
    "rich",
)

AUDITED_MAIN = textwrap.dedent(
    """
    import atexit, sys
    lazy = tuple(sys.argv.pop(1).split(","))
    def report():
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {l.split(".")[0] for l in lazy}
                        and any(m == l or m.startswith(l + ".") for l in lazy))
        sys.stderr.write("LOADED:" + ",".join(loaded) + "\\n")
    atexit.register(report)
    from cli.main import main
    main(sys.argv[1:])
    """
)


def _loaded(env: CofferEnv, lazy: tuple[str, ...], *args: str) -> list[str]:
    """The modules under ``lazy``'s prefixes that ``coffer ARGS`` loaded (it must succeed)."""
    result = env.python(AUDITED_MAIN, ",".join(lazy), *args)
    assert result.code == 0, result.err
    line = next(x for x in result.err.splitlines() if x.startswith("LOADED:"))
    return [m for m in line.removeprefix("LOADED:").split(",") if m]


def test_a_folder_backup_loads_no_graph_client_and_no_rich(tmp_path: Path) -> None:
    env = new_env(tmp_path)
    init(env)
    make_tree(tmp_path / "src", files=30)
    for _ in range(2):  # the first backup and a no-change rerun
        assert _loaded(env, LAZY, "-q", "backup", "--path", str(tmp_path / "src")) == []


def test_the_audit_sees_what_a_tenant_command_loads(tmp_path: Path) -> None:
    """The same audit on a command that needs them: it must report them (the
    check above can fail)."""
    env = new_env(tmp_path)
    init(env)
    loaded = _loaded(env, LAZY, "backup", "--help")
    assert loaded == []  # --help shows --service's choices from the registry only
    code = "import sources.m365; sources.m365.TenantBackup"
    proc = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "'sources.m365.backup.runner'" in proc.stdout
    assert "'msal'" in proc.stdout


# What a restore of a folder snapshot into a directory never needs besides
# the above: Microsoft 365's restore writers (sources/m365/restore/__init__.py
# loads them on first use).
LAZY_RESTORE = (*LAZY, "sources.m365.restore.runner", "sources.m365.restore.common")


def test_a_folder_restore_to_a_directory_loads_no_graph_client(tmp_path: Path) -> None:
    env = new_env(tmp_path)
    init(env)
    make_tree(tmp_path / "src", files=30)
    env.run("backup", "--path", str(tmp_path / "src"))
    restore = ("-q", "restore", "latest", "--to-dir", str(tmp_path / "out"))
    assert _loaded(env, LAZY_RESTORE, *restore) == []
    assert (tmp_path / "out" / "nested").is_dir()  # the restore did run
