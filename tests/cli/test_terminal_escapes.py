"""Hostile names never reach the terminal raw (issue 12, item 14).

A local folder holds files and a folder named with OSC and CSI sequences, a
C1 control (as a character and as a raw byte), DEL, a bidi override,
zero-width characters, spaces only, a literal backslash, rich markup and a
newline; the folder backed up is itself named with an OSC sequence, so the
owner's name is hostile too. The real ``coffer`` prints them in every human
listing and summary; the tests check the bytes it writes (tests/cli/support/escapes.py),
read each shown name back by the documented escapes (docs/security.md) and
compare with ``--json``, which must carry the exact names.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from cli.ui.progress import Progress
from tests.cli.support.escapes import (
    HOSTILE,
    RAW_C1,
    assert_safe,
    make_hostile_tree,
    run_raw,
    unescape,
)
from tests.cli.support.helpers import COFFER, CofferEnv, init, new_env

OWNER_DIR = "src\x1b]0;owner\x07"


@dataclass
class Hostile:
    env: CofferEnv
    root: Path
    source: Path
    names: list[str]
    first: str  # snapshot IDs
    second: str
    backup_err: bytes


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    root = tmp_path_factory.mktemp("escapes")
    env = new_env(root / "coffer")
    init(env)
    source = root / OWNER_DIR
    source.mkdir()
    (source / "plain.txt").write_text("plain\n")
    env.run("backup", "--path", str(source))
    names = make_hostile_tree(source)
    code, _out, err = run_raw(env, "backup", "--path", str(source))
    assert code == 0, err
    snaps = env.run("snapshots", "--json").json()
    return Hostile(env, root, source, names, snaps[0]["id"], snaps[1]["id"], err)


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line]


def test_backup_summary_escapes_the_owner_name(hostile: Hostile) -> None:
    text = assert_safe(hostile.backup_err, "backup")
    assert "src\\x1b]0;owner\\x07" in text


def test_ls_shows_each_name_escaped_unambiguously_and_json_exactly(hostile: Hostile) -> None:
    env = hostile.env
    code, out, err = run_raw(env, "ls", "latest", "-R")
    assert code == 0, err
    shown = _lines(assert_safe(out, "ls"))
    assert_safe(err, "ls stderr")
    exact = [item["path"] for item in env.run("ls", "latest", "-R", "--json").json()]
    assert set(hostile.names) <= set(exact)  # --json carries the names as they are
    # One line per item; each reads back to exactly its item.
    assert len(shown) == len(exact)
    back = []
    for line in shown:
        line = line.removesuffix("/")
        if " -> " in line:
            line, target = line.split(" -> ")
            assert unescape(target) == "target\x1b]0;link\x07"
        back.append(unescape(line))
    assert sorted(back) == sorted(exact)
    text = "\n".join(shown)
    for escaped in (
        "title\\x1b]0;pwned\\x07",
        "clear\\x1b[2J\\x1b[H",
        "c1-\\u009b31m-red",
        "del\\x7fete",
        "invoice\\u202egnp.exe",
        "zero\\u200bwidth\\u200d\\ufeff",
        "\\x20\\x20\\x20",
        "back\\\\x1bslash",  # the literal backslash doubled: not an ESC
        "[bold]bold[link=https:evil.example]click :smile:",
        "new\\nline\\ttab",
        "raw-\\x9b2J",  # the byte that is not UTF-8
        "dir\\x1b]2;folder\\x07\\u202e/inner\\x1b[31m.txt",
    ):
        assert escaped in text, escaped
    # The long listing and the repository-wide layout (the mount's view) too.
    code, out, err = run_raw(env, "ls", "latest", "-R", "-l")
    assert code == 0
    assert "title\\x1b]0;pwned\\x07" in assert_safe(out, "ls -l")
    code, out, err = run_raw(env, "ls", "/", "-R")
    assert code == 0
    assert "raw-\\x9b2J" in assert_safe(out, "ls /")


def test_snapshots_stats_and_reports_escape_the_owner(hostile: Hostile) -> None:
    env = hostile.env
    for args in (("snapshots",), ("stats",), ("report",)):
        code, out, err = run_raw(env, *args)
        assert code == 0, err
        assert_safe(out, " ".join(args))
        assert_safe(err, " ".join(args))
    # (The table cuts long owner names; the summaries below show them whole.)
    owners = {s["owner"] for s in env.run("snapshots", "--json").json()}
    assert all(owner.endswith(OWNER_DIR) for owner in owners)  # exact in JSON
    # The stored report of the hostile backup, shown whole (as JSON text, whose
    # \u escapes are safe and exact).
    report = env.run("report", "--kind", "backup", "--json").json()[-1]["name"]
    code, out, err = run_raw(env, "report", report)
    assert code == 0, err
    assert "src\\u001b]0;owner\\u0007" in assert_safe(out, "report")


def test_diff_escapes_added_names(hostile: Hostile) -> None:
    env = hostile.env
    code, out, err = run_raw(env, "diff", hostile.first[:12], hostile.second[:12])
    assert code == 0, err
    assert_safe(err, "diff stderr")
    lines = _lines(assert_safe(out, "diff"))
    added = {unescape(line.split(None, 1)[1].removesuffix("/")) for line in lines}
    assert added == set(hostile.names)
    exact = {c["path"] for c in env.run("diff", hostile.first, hostile.second, "--json").json()}
    assert exact == set(hostile.names)


def test_restore_summary_escapes_failed_names(hostile: Hostile, tmp_path: Path) -> None:
    # A symlink planted where the hostile folder goes: that item fails, and
    # the summary names it.
    target = tmp_path / "target"
    target.mkdir()
    (target / "dir\x1b]2;folder\x07\u202e").symlink_to(tmp_path)
    code, out, err = run_raw(hostile.env, "restore", "latest", "--to-dir", str(target))
    assert code == 3, err
    text = assert_safe(err, "restore")
    assert_safe(out, "restore stdout")
    assert "failed dir\\x1b]2;folder\\x07\\u202e" in text
    assert "src\\x1b]0;owner\\x07" in text
    report = hostile.env.run(
        "restore", "latest", "--to-dir", str(tmp_path / "again"), "--json"
    ).json()
    assert report["owners"][0]["owner"].endswith(OWNER_DIR)
    assert (tmp_path / "again" / "title\x1b]0;pwned\x07").read_text() == "hostile 0\n"


def test_errors_and_usage_errors_quote_names_defanged(hostile: Hostile) -> None:
    env = hostile.env
    code, out, err = run_raw(env, "ls", "latest", "missing\x1b]0;pwned\x07\u202e")
    assert code != 0
    text = assert_safe(err, "error")
    assert "\\x1b]0;pwned\\x07\\u202e" in text
    code, out, err = run_raw(env, "no-such\x1b[2J\x9b")
    assert code == 2
    assert "No such command 'no-such\\x1b[2J" in assert_safe(err, "usage error")
    code, out, err = run_raw(env, "key", "add", "--label", "admin\x1b]0;pwned\x07")
    if code == 0:
        code, out, err = run_raw(env, "key", "list")
        assert code == 0, err
        assert "admin\\x1b]0;pwned\\x07" in assert_safe(out, "key list")


def _escapes_in(raw: bytes) -> list[bytes]:
    """Every escape sequence in what a terminal received (CSI with its final byte,
    or ESC and the next byte)."""
    return re.findall(rb"\x1b\[[0-9;?]*[@-~]|\x1b.", raw)


def _in_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """Run ``coffer`` with standard error on a pseudo-terminal 250 columns wide;
    everything the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))
    proc = subprocess.Popen(
        [COFFER, *args],
        env={**env, "TERM": "xterm-256color", "COLUMNS": "250"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    received = bytearray()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0, bytes(received)
    return bytes(received)


def test_live_progress_line_escapes_names_and_markup(tmp_path: Path) -> None:
    env = new_env(tmp_path / "coffer")
    init(env)
    # The item the progress line shows last: a name combining every attack.
    name = "\x1b]0;pwned\x07\x1b[2J\u009b[bold]b[link=https:x]l\u202eexe :smile:"
    source = tmp_path / "src"
    source.mkdir()
    (source / name).write_bytes(b"x" * 1000)
    raw = _in_terminal(["backup", "--path", str(source)], env.env())
    # The live line was drawn (rich hides and shows the cursor around it) ...
    assert b"\x1b[?25l" in raw
    assert b"\x1b[?25h" in raw
    text = raw.decode("utf-8")
    # ... with the name escaped and the markup as typed.
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\u009b[bold]b[link=https:x]l\\u202eexe :smile:" in text
    # Only rich's own cursor and line controls, never OSC, a screen clear,
    # a bell, a C1 control, a bidi override or markup turned into styles.
    allowed = {b"\x1b[?25l", b"\x1b[?25h", b"\x1b[2K", b"\x1b[1A", b"\x1b[0m", b"\x1b[m"}
    for sequence in _escapes_in(raw):
        assert sequence in allowed or re.fullmatch(rb"\x1b\[\d*[ABCDGK]", sequence), sequence
    assert b"\x07" not in raw
    assert b"\x1b]" not in raw
    assert "\u009b" not in text
    assert "\u202e" not in text


def test_progress_line_is_text_not_markup() -> None:
    """The line rendered by rich as the live display would: markup and
    escapes from a name come out as typed."""
    progress = Progress("backup", enabled=False)
    progress.item("[bold red]x[/] [link=https://e.x]y[/link]\x1b]0;t\x07", 1)
    console = Console(force_terminal=True, width=300, color_system="truecolor", record=True)
    with console.capture() as capture:
        console.print(progress.render())
    out = capture.get()
    assert "[bold red]x[/] [link=https://e.x]y[/link]\\x1b]0;t\\x07" in out
    assert "\x1b]8;" not in out  # no hyperlink
    assert "\x1b[1" not in out  # no bold


def test_json_of_every_listing_carries_exact_names(hostile: Hostile) -> None:
    env = hostile.env
    listing = env.run("ls", "latest", "-R", "--json").json()
    by_path = {item["path"]: item for item in listing}
    assert by_path["link"]["target"] == "target\x1b]0;link\x07"
    assert os.fsdecode(RAW_C1) in by_path
    for name in HOSTILE:
        assert by_path[name]["name"] == name
    # JSON text itself is ASCII with \u escapes: safe on a terminal as it is.
    code, out, _ = run_raw(env, "ls", "latest", "-R", "--json")
    assert code == 0
    assert_safe(out, "ls --json")
    assert json.loads(out) == listing


def test_names_planted_in_the_storage_are_shown_escaped(hostile: Hostile, tmp_path: Path) -> None:
    """Someone with write access to the storage names a key slot file with an
    escape sequence: ``key list`` (and any warning about it) shows it escaped."""
    repo = tmp_path / "repo"
    subprocess.run(["cp", "-a", str(hostile.env.repo), str(repo)], check=True)
    (repo / "keys" / "evil\x1b]0;pwned\x07\u202e").write_bytes(b"junk")
    fresh = {"COFFER_REPO": str(repo), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code, out, err = run_raw(hostile.env, "snapshots", **fresh)
    assert code == 0, err
    assert_safe(err, "log")  # (a repository with a sealed slot list does not even read it)
    code, out, err = run_raw(hostile.env, "key", "list", **fresh)
    assert code == 0, err
    listed = assert_safe(out, "key list")
    assert "  evil\\x1b]0" in listed  # the slot's ID column: its first 8 characters
    assert "IGNORED: " in listed
    assert_safe(err, "key list stderr")
