"""Bad input never ends in a traceback or "unexpected error" (issue 12, item 15).

A hypothesis sweep runs the ``coffer`` entry point (``cli.main.main``, the
code the executable runs, in-process under click's runner for speed) with
random commands and options, configuration files of random bytes or random
TOML over the real keys, and random environment values, against a copy of a
small real repository. Every run must end with one of the documented exit
codes (store.ExitCode, README) and no "unexpected error" or traceback. A few
representative cases run the real executable as a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.commands import COMMANDS
from cli.main import cli, main
from store import ExitCode
from tests.cli.support.helpers import CofferEnv, init, make_tree, new_env

DOCUMENTED = set(ExitCode)  # README's table (tests/cli/test_exit_code_table.py)
# mount would serve in the foreground until unmounted: not part of the sweep.
SWEPT = sorted(set(COMMANDS) - {"mount"})
# Options whose values could make a run legitimately endless or huge (a
# bandwidth limit of a byte a day, a wait of years) get small values only.
_SMALL_ONLY = {"--wait", "--kdf-memory", "--kdf-iterations", "--pack-size", "--workers"}


@dataclass
class Template:
    """A small real repository (two snapshots of a folder) to copy per example."""

    root: Path
    env: CofferEnv
    source: Path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("bad-input")
    env = new_env(root / "coffer")
    init(env)
    source = root / "src"
    make_tree(source, files=6)
    env.run("backup", "--path", str(source))
    (source / "more.txt").write_text("more\n")
    env.run("backup", "--path", str(source))
    return Template(root, env, source)


def _commands() -> list[tuple[list[str], click.Command]]:
    """Every swept command (and key/repair subcommand) with its click object."""
    ctx = click.Context(cli)
    out: list[tuple[list[str], click.Command]] = []
    for name in SWEPT:
        command = cli.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            out += [([name, sub], command.commands[sub]) for sub in sorted(command.commands)]
        else:
            out.append(([name], command))
    return out


COMMAND_LIST = _commands()

# Values that tend to break parsers: empty, blanks, signs, huge and odd numbers,
# dates, globs, selectors, targets, control and invisible characters.
_WORDS = [
    "",
    " ",
    "-",
    "--",
    "0",
    "-1",
    "1",
    "7",
    "1e309",
    "nan",
    "inf",
    "99999999999999999999999999",
    "0x10",
    "1.5",
    "latest",
    "latest/",
    "/",
    "*",
    "[",
    "]",
    "\\",
    "%",
    "%ZZ",
    "a:b",
    "user:",
    "user:a@b",
    "site:",
    "site:x",
    "original",
    "folder:",
    "2026-13-45",
    "2026-01-01",
    "9999-12-31",
    "0001-01-01",
    "yesterday",
    "1d",
    "-3d",
    "10y",
    "9999y",
    "99999999999d",
    "100%",
    "50%",
    "abc%",
    "mail",
    "users/*",
    "snapshots",
    "owners/folders",
    "ids/",
    "ids/zz",
    "\x1b]0;x\x07",
    "\u202e",
    "\udcff",
    "ü",
    "out",
    "out/sub",
]


def _safe_token(value: str) -> bool:
    # Paths stay inside the example's directory (no absolute paths, no "..",
    # no home), and argv cannot hold NUL.
    return (
        "\x00" not in value
        and ".." not in value
        and not value.startswith(("/", "~"))
        and not value.startswith("//")
    )


_text = st.text(max_size=12).filter(_safe_token)
_value = st.one_of(st.sampled_from(_WORDS).filter(_safe_token), _text, st.integers(-3, 70).map(str))


@st.composite
def invocations(draw: st.DrawFn) -> list[str]:
    words, command = draw(st.sampled_from(COMMAND_LIST))
    args = list(words)
    chosen = draw(st.lists(st.sampled_from(command.params), max_size=5)) if command.params else []
    for param in chosen:
        if isinstance(param, click.Option):
            option = draw(st.sampled_from(param.opts))
            if param.is_flag:
                args.append(option)
            elif option in _SMALL_ONLY:
                args += [option, str(draw(st.integers(-2, 8)))]
            elif isinstance(param.type, click.Choice) and draw(st.booleans()):
                args += [option, str(draw(st.sampled_from(param.type.choices)))]
            else:
                args += [option, draw(_value)]
        else:
            args.append(draw(_value))
    if draw(st.integers(0, 4)) == 0:
        args.insert(draw(st.integers(0, len(args))), draw(_value))
    return args


_scalar: st.SearchStrategy[Any] = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    _text,
    st.sampled_from(_WORDS).filter(_safe_token),
)
_toml_value: st.SearchStrategy[Any] = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_KNOWN_TOP = ["repository", "cache_dir", "limit_upload", "limit_download"]
_DESTINATION_KEYS = ["name", "repository", "password_file", "limit_upload", "limit_download"]
_RETENTION_KEYS = [
    "keep-last",
    "keep-daily",
    "keep-weekly",
    "keep-within",
    "keep-deleted-within",
    "after-backup",
    "owners",
]


def _toml_key(key: str) -> str:
    """``key`` as a TOML basic string (escapes only where TOML requires them)."""
    out = []
    for char in key:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml(value: Any) -> str:
    """``value`` as a TOML inline value (strings escaped, floats spelled out)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_key(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"


@st.composite
def config_texts(draw: st.DrawFn) -> bytes:
    """A configuration file: random bytes, or TOML over the real keys."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=64))
    lines: list[str] = []
    for key in draw(st.lists(st.sampled_from(_KNOWN_TOP), max_size=3, unique=True)):
        lines.append(f"{key} = {_toml(draw(_toml_value))}")
    if draw(st.booleans()):
        lines.append("[retention]")
        for key in draw(st.lists(st.sampled_from(_RETENTION_KEYS), max_size=3, unique=True)):
            lines.append(f"{_toml_key(key)} = {_toml(draw(_toml_value))}")
    for _ in range(draw(st.integers(0, 2))):
        lines.append("[[destination]]")
        for key in draw(st.lists(st.sampled_from(_DESTINATION_KEYS), max_size=4, unique=True)):
            lines.append(f"{key} = {_toml(draw(_toml_value))}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


_TENANT_KEYS = [
    "tenant_id",
    "client_id",
    "certificate",
    "private_key",
    "credential",
    "auth",
    "ca_file",
    "token_cache",
    "users",
    "groups",
    "exclude_users",
    "services",
    "user_services",
    "sites",
    "teams",
    "exclude_folders",
    "exclude_paths",
    "max_item_size",
    "onedrive_versions",
    "mime_dedup",
    "parallel_owners",
    "workers_per_owner",
]


@st.composite
def tenant_configs(draw: st.DrawFn) -> bytes:
    """A [tenant] table with random values for the real keys. It never signs in:
    the secret file does not exist and the identity platform is an unreachable
    loopback port, so the run ends at the first check that fails."""
    lines = [
        "[tenant]",
        'tenant_id = "00000000-0000-0000-0000-000000000000"',
        'client_id = "11111111-1111-1111-1111-111111111111"',
        'client_secret_file = "missing-secret.txt"',
        'authority = "https://127.0.0.1:9/tenant"',
        'graph_url = "https://127.0.0.1:9/v1.0"',
    ]
    for key in draw(st.lists(st.sampled_from(_TENANT_KEYS), max_size=6, unique=True)):
        value = draw(_toml_value)
        lines = [line for line in lines if not line.startswith(f"{key} =")]
        if key == "auth" and value == "device_code":
            value = "device-code"  # would start a sign-in and wait for it
        if key == "user_services" and isinstance(value, dict):
            lines.insert(1, f"user_services = {_toml(value)}")
            continue
        lines.insert(1, f"{key} = {_toml(value)}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


_ENV_NAMES = [
    "COFFER_REPO",
    "COFFER_PASSWORD",
    "COFFER_PASSWORD_FILE",
    "COFFER_CONFIG",
    "COFFER_CACHE_DIR",
    "COFFER_FROM_REPO",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
]
_env_value = st.one_of(
    # Paths relative to the example's directory: the repository, the password
    # file (a file where a directory is wanted), nothing; bytes that are not UTF-8.
    st.sampled_from(
        ["", "repo", "config.toml", "password", "password/x", "nothing-here", ".", "\udcff\udcfe"]
    ),
    st.sampled_from(_WORDS).filter(lambda v: _safe_token(v) and v.isprintable() and v != ""),
)


def run_entry(args: list[str], env: dict[str, str | None], cwd: Path) -> tuple[int, str]:
    """``coffer ARGS`` in-process (the executable's own ``main``); exit code and
    everything written to standard output and error."""
    runner = CliRunner()
    old = Path.cwd()
    limit = sys.getrecursionlimit()  # `stats` raises it for deep trees; a process would end
    os.chdir(cwd)
    try:
        with runner.isolation(env=env) as (out, err, _both):
            try:
                main(args)
                code: int = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                sys.stdout.flush()  # the runner's streams buffer
                sys.stderr.flush()
        text = out.getvalue().decode("utf-8", "replace") + err.getvalue().decode("utf-8", "replace")
    finally:
        os.chdir(old)
        sys.setrecursionlimit(limit)
    return code, text


@contextlib.contextmanager
def example_dir(template: Template) -> Iterator[Path]:
    """A private copy of the template repository, password file and a cache."""
    with tempfile.TemporaryDirectory(prefix="coffer-bad-") as name:
        root = Path(name)
        shutil.copytree(template.env.repo, root / "repo", symlinks=True)
        shutil.copy(template.env.password_file, root / "password")
        (root / "src").symlink_to(template.source)
        yield root


def base_env(root: Path) -> dict[str, str | None]:
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("COFFER_")}
    env.update(
        COFFER_REPO=str(root / "repo"),
        COFFER_PASSWORD_FILE=str(root / "password"),
        XDG_CACHE_HOME=str(root / "cache"),
        XDG_CONFIG_HOME=str(root / "config"),
        COFFER_DEBUG=None,
    )
    return env


def assert_clean(code: int, text: str, what: object) -> None:
    assert "unexpected error" not in text, (what, text)
    assert "Traceback" not in text, (what, text)
    assert code in DOCUMENTED, (what, code, text)


def _sweep(
    template: Template, args: list[str], config: bytes | None, env_extra: dict[str, str]
) -> None:
    with example_dir(template) as root:
        env = base_env(root)
        if config is not None:
            (root / "config.toml").write_bytes(config)
            env["COFFER_CONFIG"] = str(root / "config.toml")
        for name, value in env_extra.items():
            env[name] = value
        code, text = run_entry(args, env, root)
        assert_clean(code, text, (args, config, env_extra))


_SWEEP = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


@settings(_SWEEP, max_examples=40)
@given(args=invocations())
def test_random_arguments_end_in_a_documented_exit(template: Template, args: list[str]) -> None:
    _sweep(template, args, None, {})


@settings(_SWEEP, max_examples=30)
@given(
    config=config_texts(),
    command=st.sampled_from(
        [
            ["snapshots"],
            ["ls", "latest"],
            ["forget", "--dry-run"],
            ["backup", "--path", "src"],
            ["copy", "--to", "repo", "--json"],
            ["stats"],
        ]
    ),
)
def test_random_configuration_files_are_configuration_errors(
    template: Template, config: bytes, command: list[str]
) -> None:
    _sweep(template, command, config, {})


@settings(_SWEEP, max_examples=60)
@given(
    values=st.dictionaries(st.sampled_from(_ENV_NAMES), _env_value, max_size=3),
    command=st.sampled_from([["snapshots"], ["ls", "latest"], ["backup", "--path", "src"]]),
)
def test_random_environment_values_end_in_a_documented_exit(
    template: Template, values: dict[str, str], command: list[str]
) -> None:
    _sweep(template, command, None, values)


@settings(_SWEEP, max_examples=25)
@given(config=tenant_configs())
def test_random_tenant_tables_are_configuration_errors(template: Template, config: bytes) -> None:
    _sweep(template, ["backup"], config, {})


@pytest.mark.slow
@settings(_SWEEP, max_examples=600, derandomize=False, database=None)
@given(
    args=invocations(),
    config=st.none() | config_texts(),
    values=st.dictionaries(st.sampled_from(_ENV_NAMES), _env_value, max_size=2),
)
def test_many_random_invocations_end_in_a_documented_exit(
    template: Template, args: list[str], config: bytes | None, values: dict[str, str]
) -> None:
    _sweep(template, args, config, values)


# -- the real executable, a few representative cases ------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'repository = "\xff\xfe"\n', "not UTF-8"),
        (b"\x00\x01\x02binary", "not"),
        (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "not valid TOML"),
        (b"repository = 5\n", "'repository' must be a string"),
        (b"[[destination]]\nname = 1\n", "'name' must be"),
        (b'[retention]\nkeep-daily = "many"\n', "keep"),
    ],
)
def test_a_bad_configuration_file_is_exit_16_naming_the_file(
    template: Template, tmp_path: Path, content: bytes, reason: str
) -> None:
    config = tmp_path / "coffer.toml"
    config.write_bytes(content)
    env = template.env
    command = ["forget", "--dry-run"] if b"retention" in content else ["snapshots"]
    # Without COFFER_REPO when the file's repository must be read.
    repo = "" if b"repository" in content or b"destination" in content else str(env.repo)
    result = env.run(*command, check=False, COFFER_CONFIG=str(config), COFFER_REPO=repo)
    assert result.code == 16, result.err
    assert result.err.count("\n") == 1, result.err
    assert str(config) in result.err
    assert reason in result.err
    assert "unexpected error" not in result.err


def test_an_unreadable_configuration_file_is_exit_16(template: Template, tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.toml"
    folder.mkdir()
    result = template.env.run("snapshots", check=False, COFFER_CONFIG=str(folder))
    assert result.code == 16, result.err
    assert str(folder) in result.err
    locked = tmp_path / "locked.toml"
    locked.write_text('repository = "x"\n')
    locked.chmod(0)
    result = template.env.run("snapshots", check=False, COFFER_CONFIG=str(locked))
    if os.geteuid() != 0:  # root reads it anyway
        assert result.code == 16, result.err
        assert str(locked) in result.err
    assert "unexpected error" not in result.err


def test_environment_values_the_sweep_found(template: Template, tmp_path: Path) -> None:
    env = template.env
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    # A cache location with a file in the way: a configuration error naming it.
    for name in ("XDG_CACHE_HOME", "COFFER_CACHE_DIR"):
        result = env.run("snapshots", check=False, **{name: str(in_the_way)})
        assert result.code == 16, result.err
        assert str(in_the_way) in result.err
        assert "unexpected error" not in result.err
    # A password that is not UTF-8 is a password like any other: wrong here.
    # (Before: "unexpected error: UnicodeEncodeError".)
    result = env.run(
        "snapshots", check=False, COFFER_PASSWORD_FILE="", COFFER_PASSWORD="\udcff\udcfe"
    )
    assert result.code == 11, result.err
    # A repository URL that is not UTF-8: refused in one line, not a crash.
    result = env.run("snapshots", check=False, COFFER_REPO="sftp://\udcff/x")
    assert result.code in DOCUMENTED, result.err
    assert "unexpected error" not in result.err
    assert result.err.count("\n") == 1, result.err
    # A cache directory whose name is not UTF-8 is a directory like any other
    # (before: "unexpected error: UnicodeEncodeError" from LMDB's path encoding).
    cache = os.fsdecode(bytes(tmp_path) + b"/cache-\xff\xfe")
    result = env.run("snapshots", check=False, COFFER_CACHE_DIR=cache)
    assert result.code == 0, result.err
    assert Path(cache).is_dir()


def test_endless_configuration_and_password_files_are_refused(template: Template) -> None:
    """/dev/zero as the configuration or the password file: refused after a
    bounded read (before: read until memory ran out)."""
    env = template.env
    result = env.run("snapshots", check=False, timeout=60, COFFER_CONFIG="/dev/zero")
    assert result.code == 16, result.err
    assert "/dev/zero: larger than" in result.err
    result = env.run("snapshots", check=False, timeout=60, COFFER_PASSWORD_FILE="/dev/zero")
    assert result.code == 16, result.err
    assert "password file /dev/zero is larger than" in result.err


@pytest.mark.parametrize(
    "args",
    [
        ["find", "--until", "9999-12-31"],  # the end of the last day there is
        ["restore", "latest", "--until", "9999-12-31", "--to-dir", "out"],
        ["forget", "--keep-within", "99999999999d", "--dry-run"],  # keeps everything
        ["forget", "--keep-within", "9999y", "--dry-run"],
    ],
)
def test_extreme_dates_and_durations_are_not_crashes(
    template: Template, tmp_path: Path, args: list[str]
) -> None:
    """Found by hand while sweeping (before: "unexpected error: OverflowError",
    or "year -7973 is out of range")."""
    with example_dir(template) as root:
        code, text = run_entry(args, base_env(root), root)
    assert_clean(code, text, args)
    assert code == 0, text
