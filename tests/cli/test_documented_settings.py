"""Every configuration key the parsers accept, and every option the README shows,
is exercised through the ``coffer`` command by some test.

``after-backup`` was documented and parsed, yet nothing called it, and its only
test called the helper directly. This keeps that from happening again: a key
or an option counts as exercised when a test module that runs the ``coffer``
executable uses it (a TOML line ``key =`` or the option string itself). The
lists of keys come from the parsers themselves, so a new key fails here until
some CLI test uses it.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from cli.main import cli as coffer_group
from cli.settings.destinations import DESTINATION_KEYS
from cli.settings.retention import COUNT_KEYS
from sources.m365.restore.settings import RESTORE_KEYS
from sources.m365.settings import _KNOWN_KEYS as TENANT_KEYS

ROOT = Path(__file__).resolve().parents[2]
# Top-level keys (cli/settings/config.py, cli/app.py, cli/settings/destinations.py) and those of
# [prune] and [retention] (cli/commands/prune.py, cli/settings/retention.py).
TOP_LEVEL_KEYS = {"repository", "cache_dir", "limit_upload", "limit_download"}
PRUNE_KEYS = {"grace", "max-unused"}
RETENTION_KEYS = (
    {f"keep-{name}" for name in COUNT_KEYS}
    | {"keep-within", "keep-deleted-within", "after-backup"}
    | {"owners"}
)


def _cli_test_sources() -> str:
    """The text of every test module that runs the real ``coffer`` executable."""
    texts = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        text = path.read_text()
        if re.search(
            r'\bCOFFER\b|with_name\("coffer"\)|from tests\.cli\.support\.helpers import', text
        ):
            texts.append(text)
    return "\n".join(texts)


CLI_TESTS = _cli_test_sources()


def _simulator_keys() -> set[str]:
    """[tenant] keys of the coffer.toml the simulator writes (tools/graphsim/files.py).

    CLI tests back up with that file, so these keys go through ``coffer``.
    """
    text = (ROOT / "tools" / "graphsim" / "files.py").read_text()
    return set(re.findall(r'^\s*f?["\']([a-z_]+) = ', text, re.MULTILINE))


SIMULATOR_KEYS = _simulator_keys()
USES_SIMULATOR_CONFIG = 'sim" / "coffer.toml"' in CLI_TESTS


def _used_as_key(key: str) -> bool:
    if USES_SIMULATOR_CONFIG and key in SIMULATOR_KEYS:
        return True
    # In a TOML text: `key = ...` at the start of a line (also inside a
    # Python string, after a \n escape), or `[retention.owners."..."]`.
    tables = {"owners": "[retention.owners.", "user_services": "[tenant.user_services]"}
    if key in tables:
        return tables[key] in CLI_TESTS
    pattern = rf'(^|\\n|\n|"|\')\s*{re.escape(key)}\s*='
    return re.search(pattern, CLI_TESTS, re.MULTILINE) is not None


def test_the_simulator_keys_are_found() -> None:
    # The scan of tools/graphsim/files.py must keep finding what it writes.
    assert {"tenant_id", "client_id", "client_secret_file", "graph_url"} <= SIMULATOR_KEYS


def test_every_configuration_key_is_used_through_the_cli() -> None:
    sections = {
        "top level": TOP_LEVEL_KEYS,
        "[tenant]": set(TENANT_KEYS),
        "[restore]": set(RESTORE_KEYS),
        "[[destination]]": set(DESTINATION_KEYS),
        "[retention]": RETENTION_KEYS,
        "[prune]": PRUNE_KEYS,
    }
    missing = [
        f"{section} {key}"
        for section, keys in sections.items()
        for key in sorted(keys)
        if not _used_as_key(key)
    ]
    assert missing == []


def _readme_options() -> set[str]:
    """Options of ``coffer`` in the README (lines running other tools left out)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    text = "\n".join(line for line in lines if "tools.graphsim" not in line)
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))


def _cli_options() -> set[str]:
    """Every long option of every ``coffer`` command (the click tree)."""
    found: set[str] = set()

    def visit(command: click.Command, ctx: click.Context) -> None:
        for param in command.params:
            found.update(o for o in param.opts + param.secondary_opts if o.startswith("--"))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                visit(sub, click.Context(sub, parent=ctx, info_name=name))

    visit(coffer_group, click.Context(coffer_group, info_name="coffer"))
    return found


def test_the_readme_names_only_real_options() -> None:
    assert _readme_options() - _cli_options() == set()


def test_every_readme_option_is_used_through_the_cli() -> None:
    missing = sorted(o for o in _readme_options() if f'"{o}"' not in CLI_TESTS)
    assert missing == []
