"""File names in the tree (sources/m365/names.py): reversible, stable, distinct."""

from __future__ import annotations

from sources.m365.names import item_name, safe_name, stamp


def test_safe_name_is_reversible_and_never_climbs_out() -> None:
    for hostile in ("..", ".", "a/b", "50%", "nul\x00", "tab\tname", "", "-rf"):
        name = safe_name(hostile)
        assert "/" not in name
        assert "\x00" not in name
        assert name not in (".", "..", "")
    assert safe_name("a/b") != safe_name("a%2Fb")
    long = safe_name("ü" * 200 + ".txt")
    assert len(long.encode()) <= 255
    assert safe_name("ü" * 200 + ".txt") != safe_name("ü" * 201 + ".txt")


def test_item_names_are_stable_and_distinct() -> None:
    a = item_name("2024-05-01T10:22:33Z", "Re: hello/world", "AAMk1", ".eml")
    b = item_name("2024-05-01T10:22:33Z", "Re: hello/world", "AAMk2", ".eml")
    assert a.startswith("2024-05-01T10-22-33Z Re: hello%2Fworld [")
    assert a.endswith("].eml")
    assert a != b
    assert a == item_name("2024-05-01T10:22:33.0000000Z", "Re: hello/world", "AAMk1", ".eml")
    assert len(item_name(None, "x" * 1000, "id", ".eml").encode()) <= 255
    assert stamp("nonsense") == "0000-00-00T00-00-00Z"
