"""What the terminal-escape tests share: hostile names, and the checks on output.

The checks are written from docs/security.md ("Names on the terminal"), not
from store/browse/safetext.py: :func:`unescape` reads the documented escapes back,
so a test can tell that what was shown names exactly one thing.
"""

from __future__ import annotations

import os
import subprocess
import unicodedata
from pathlib import Path

from tests.cli.support.helpers import COFFER, CofferEnv

# One of each attack: OSC (retitle), CSI (clear screen), C1 CSI (as a Unicode
# character), DEL, bidi override, zero-width characters, a name of spaces only,
# a literal backslash that must not read as an escape, rich markup, and a
# newline and a tab inside a name.
HOSTILE = (
    "title\x1b]0;pwned\x07",
    "clear\x1b[2J\x1b[H",
    "c1-\u009b31m-red",
    "del\x7fete",
    "invoice\u202egnp.exe",
    "zero\u200bwidth\u200d\ufeff",
    "   ",
    "back\\x1bslash",
    "[bold]bold[link=https:evil.example]click :smile:",
    "new\nline\ttab",
)
# A local file name that is not UTF-8: the raw C1 byte 0x9b (CSI on terminals
# that take 8-bit controls).
RAW_C1 = b"raw-\x9b2J"


def run_raw(env: CofferEnv, *args: str, **extra: str) -> tuple[int, bytes, bytes]:
    """The real ``coffer`` with its output as bytes (nothing decoded for us)."""
    proc = subprocess.run(
        [COFFER, *args],
        check=False,
        env=env.env(**extra),
        capture_output=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stdout, proc.stderr


def assert_safe(data: bytes, what: str = "output") -> str:
    """``data`` is UTF-8 with no control character but newline and tab, no DEL,
    no C1 and nothing invisible (format characters, separators). Returns the text."""
    text = data.decode("utf-8")  # strict: a raw 0x9b byte fails here
    for index, char in enumerate(text):
        point = ord(char)
        bad = (
            (point < 0x20 and char not in "\n\t")
            or point == 0x7F
            or 0x80 <= point <= 0x9F
            or unicodedata.category(char) in ("Cf", "Zl", "Zp", "Cs")
        )
        assert not bad, (
            f"{what}: U+{point:04X} at {index}: {text[max(0, index - 40) : index + 40]!r}"
        )
    return text


_SHORT = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def unescape(shown: str) -> str:
    """The name a shown (escaped) name stands for, by the documented escapes.

    ``\\xHH`` at or above 80 is a byte that is not UTF-8, returned as
    ``os.fsdecode`` writes it (a surrogate escape). Raises AssertionError on a
    backslash that starts no documented escape.
    """
    out: list[str] = []
    i = 0
    while i < len(shown):
        char = shown[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        kind = shown[i + 1]
        if kind in _SHORT:
            out.append(_SHORT[kind])
            i += 2
        elif kind == "x":
            value = int(shown[i + 2 : i + 4], 16)
            out.append(chr(value) if value < 0x80 else chr(0xDC00 + value))
            i += 4
        elif kind == "u":
            out.append(chr(int(shown[i + 2 : i + 6], 16)))
            i += 6
        elif kind == "U":
            out.append(chr(int(shown[i + 2 : i + 10], 16)))
            i += 10
        else:
            raise AssertionError(f"undocumented escape {shown[i : i + 2]!r} in {shown!r}")
    return "".join(out)


def make_hostile_tree(root: Path) -> list[str]:
    """Files and a folder with every hostile name under ``root``; their paths
    (relative, as os.fsdecode gives them)."""
    root.mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    for index, name in enumerate(HOSTILE):
        (root / name).write_text(f"hostile {index}\n")
        made.append(name)
    raw = os.path.join(os.fsencode(root), RAW_C1)
    with open(raw, "wb") as handle:
        handle.write(b"raw\n")
    made.append(os.fsdecode(RAW_C1))
    folder = root / "dir\x1b]2;folder\x07\u202e"
    folder.mkdir()
    (folder / "inner\x1b[31m.txt").write_text("inner\n")
    made += [folder.name, f"{folder.name}/inner\x1b[31m.txt"]
    (root / "link").symlink_to("target\x1b]0;link\x07")
    made.append("link")
    return made
