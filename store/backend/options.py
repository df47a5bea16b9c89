"""Parsing helpers shared by the remote backends' URL factories.

Backend options are written as a query string after the location, for example
``s3:bucket/prefix?object-lock-days=30``. Unknown options are refused (a typo
must not silently turn off ransomware protection).
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl


def split_options(rest: str, known: Collection[str], scheme: str) -> tuple[str, dict[str, str]]:
    """Split ``LOCATION?a=1&b=2`` into the location and its options.

    Raises ValueError for an option not in ``known``, a repeated option, or a
    malformed query string.
    """
    location, sep, query = rest.partition("?")
    if not sep:
        return location, {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise ValueError(f"malformed options {query!r} in {scheme}: URL") from exc
    options: dict[str, str] = {}
    for name, value in pairs:
        if name not in known:
            choices = ", ".join(sorted(known)) or "none"
            raise ValueError(f"unknown option {name!r} for {scheme}: URLs (known: {choices})")
        if name in options:
            raise ValueError(f"option {name!r} given twice in {scheme}: URL")
        options[name] = value
    return location, options


def positive_int_option(options: dict[str, str], name: str) -> int | None:
    """The option as a positive integer, None when absent; ValueError otherwise."""
    if name not in options:
        return None
    value = options[name]
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"option {name} must be a positive integer, not {value!r}")
    return int(value)


def join_key(prefix: str, key: str) -> str:
    """The remote name of ``key`` under a (possibly empty) prefix without slashes at its ends."""
    return f"{prefix}/{key}" if prefix else key


def split_container(path: str, scheme: str, what: str) -> tuple[str, str]:
    """Split ``CONTAINER/PRE/FIX`` into the container and a normalised prefix.

    Raises ValueError when the container is empty or the prefix contains empty,
    ``.`` or ``..`` segments.
    """
    container, _, prefix = path.strip("/").partition("/")
    if not container:
        raise ValueError(f"{scheme}: URL names no {what}")
    prefix = prefix.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise ValueError(f"invalid prefix {prefix!r} in {scheme}: URL")
    return container, prefix
