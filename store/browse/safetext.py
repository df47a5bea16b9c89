"""Untrusted names made safe to show: no terminal control, nothing invisible.

Names come from a Microsoft 365 tenant or a backed-up disk; anyone who can
name a file or a mail folder chooses them. Printed raw, ``ESC ] 0 ; ... BEL``
retitles the terminal, ``ESC [ 2 J`` clears it, the C1 byte ``0x9b`` starts a
control sequence on terminals that accept 8-bit controls, and U+202E (RIGHT-TO-LEFT
OVERRIDE) makes ``gnp.exe`` read as ``exe.png``. Two functions:

- :func:`printable` for a name (or a ``/`` path of names) in a listing: every
  hidden character is written as an escape, and so is the backslash itself,
  so the shown form is unambiguous and reversible (docs/security.md)::

      \\\\        a backslash
      \\t \\n \\r   tab, newline, carriage return
      \\xHH       another C0 control or DEL; a space (U+0020) at the start or
                 end of a name; a byte of a local file name that is not
                 UTF-8 (HH >= 80)
      \\uHHHH     a C1 control, a format character (bidi overrides and
                 isolates, zero-width space/joiners, soft hyphen, BOM), a
                 line or paragraph separator, a lone surrogate, a blank
                 filler (Hangul fillers, braille blank, combining grapheme
                 joiner), or another space character at a name's start or end
      \\UHHHHHHHH the same above U+FFFF (tag characters)

- :func:`defang` for whole lines that may hold a name nobody escaped (error
  messages, log records, reports stored by older versions): the same escapes
  for hidden characters, but backslashes and newlines (line breaks) and tabs
  stay as they are. It is the safety net: nothing it returns can drive a
  terminal, but only :func:`printable` is unambiguous.

Both are pure, never raise, and are idempotent on their own output's
dangerous characters (an escaped name has none left). Homoglyphs (a Cyrillic
``а`` for a Latin ``a``) are visible characters and are not escaped.

:func:`is_hidden` is the rule the mount's owner directory names use too
(store/browse/layout.py), so the mount and the command line agree on what is hidden.
"""

from __future__ import annotations

import unicodedata

# Control (C0, DEL, C1), format (bidi overrides, zero-width), surrogate, line
# and paragraph separator: invisible or misleading wherever they appear.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Letters and symbols that render as nothing or as blank space, so a name made
# of them looks empty or like another name.
_BLANKS = frozenset({0x034F, 0x115F, 0x1160, 0x2800, 0x3164, 0xFFA0})
_SHORT = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def is_hidden(char: str) -> bool:
    """True for a character that is invisible or controls a terminal (one code point)."""
    return unicodedata.category(char) in HIDDEN_CATEGORIES or ord(char) in _BLANKS


def _code(char: str) -> str:
    point = ord(char)
    if point < 0x80:
        return _SHORT.get(char) or f"\\x{point:02x}"
    if 0xDC80 <= point <= 0xDCFF:
        # os.fsdecode's stand-in for a byte that is not UTF-8: show the byte.
        return f"\\x{point - 0xDC00:02x}"
    return f"\\u{point:04x}" if point <= 0xFFFF else f"\\U{point:08x}"


def _is_blank(char: str) -> bool:
    return unicodedata.category(char) == "Zs"


def _escape_name(name: str) -> str:
    start, end = 0, len(name)
    while start < end and _is_blank(name[start]):
        start += 1
    while end > start and _is_blank(name[end - 1]):
        end -= 1
    middle = "".join(
        _code(char) if char == "\\" or is_hidden(char) else char for char in name[start:end]
    )
    lead = "".join(_code(char) for char in name[:start])
    tail = "".join(_code(char) for char in name[end:])
    return lead + middle + tail


def printable(text: str, *, path: bool = False) -> str:
    """``text`` with every hidden character, backslash and edge blank escaped
    (the module docstring lists the escapes).

    With ``path``, ``text`` is names joined by ``/`` and each name's leading
    and trailing blanks are escaped; without, those of the whole text. Spaces
    inside a name stay spaces.
    """
    if path:
        return "/".join(_escape_name(name) for name in text.split("/"))
    return _escape_name(text)


def defang(text: str) -> str:
    """``text`` with hidden characters escaped, except newline and tab, which
    stay (they separate lines and columns); backslashes stay too."""
    if text.isascii() and text.isprintable():
        return text  # the common case, and fast: no control character at all
    return "".join(_code(char) if is_hidden(char) and char not in "\n\t" else char for char in text)
