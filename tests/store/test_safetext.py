"""store/browse/safetext.py: names shown escaped, unambiguously (docs/security.md).

The escapes are read back by the test's own decoder (tests/cli/support/escapes.py,
written from the documentation), so these properties check the documented
form, not the implementation against itself.
"""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from store import defang, is_hidden, owner_component, printable
from tests.cli.support.escapes import unescape

# Any code point, surrogates included (os.fsdecode's stand-ins for bytes that
# are not UTF-8, and lone ones from JSON).
_TRICKY = [
    "\\", "x", "1", "b", "u", "U", " ", "\u00a0", "\u3000", "/", "%",
    "\x1b", "\x07", "\x00", "\t", "\n", "\r", "\x7f", "\x9b", "\x85",
    "\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u2028", "\u3164",
    "\udc9b", "\udcff", "\udc80", "\ud800", "\U000e0041",
]  # fmt: skip
_any_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()) | st.sampled_from(_TRICKY),
    max_size=40,
)
_SAFE_ASCII = {chr(c) for c in range(0x20, 0x7F)}
# No per-input deadline: it measures wall time, which on a shared, loaded machine is
# mostly the other processes' (an input over 200 ms and fast on replay fails the
# test as Flaky); Hypothesis documents deadline=None for such runs.
_LOADED = settings(deadline=None)


def _has_no_hidden(text: str) -> bool:
    return not any(is_hidden(char) for char in text)


@_LOADED
@given(_any_text)
def test_printable_reads_back_to_the_exact_name(name: str) -> None:
    shown = printable(name)
    assert _has_no_hidden(shown)
    assert unescape(shown) == name


@_LOADED
@given(st.lists(_any_text.filter(lambda n: "/" not in n), min_size=1, max_size=4))
def test_printable_paths_read_back_name_by_name(names: list[str]) -> None:
    path = "/".join(names)
    shown = printable(path, path=True)
    assert _has_no_hidden(shown)
    assert [unescape(part) for part in shown.split("/")] == names


@_LOADED
@given(_any_text, _any_text)
def test_different_names_never_look_the_same(first: str, second: str) -> None:
    if first != second:
        assert printable(first) != printable(second)


@_LOADED
@given(_any_text)
def test_defang_leaves_no_control_but_newline_and_tab(text: str) -> None:
    out = defang(text)
    for char in out:
        assert char in "\n\t" or not is_hidden(char)
    assert defang(out) == out  # the net does not double-escape


def test_the_attacks_of_the_issue() -> None:
    assert printable("a\x1b]0;pwned\x07") == "a\\x1b]0;pwned\\x07"
    assert printable("\x1b[2J") == "\\x1b[2J"
    assert printable("\x9b") == "\\u009b"  # C1 as a character
    assert printable("\udc9b") == "\\x9b"  # the byte 0x9b of a file name
    assert printable("gnp\u202eexe") == "gnp\\u202eexe"
    assert printable("a\u200bb\u200d") == "a\\u200bb\\u200d"
    assert printable("   ") == "\\x20\\x20\\x20"
    assert printable(" a b ") == "\\x20a b\\x20"
    assert printable("a\\x1b") == "a\\\\x1b"
    assert printable("[bold]x") == "[bold]x"
    assert printable("x\U000e0041") == "x\\U000e0041"
    assert printable(" a/ b", path=True) == "\\x20a/\\x20b"


def test_ordinary_names_are_shown_as_they_are() -> None:
    for name in ("Inbox", "Café crème.docx", "日本語のファイル", "50% off!", "a b c", "👍"):
        assert printable(name) == name
        assert defang(name) == name


def test_the_mount_hides_what_the_command_line_escapes() -> None:
    for char in ("\u202e", "\u200b", "\x9b", "\u3164", "\u2028"):
        assert is_hidden(char)
        assert char not in owner_component(f"owner{char}name")
    assert unicodedata.category("\u3164") == "Lo"  # a blank filler, hidden all the same
    assert all(not is_hidden(char) for char in _SAFE_ASCII)
