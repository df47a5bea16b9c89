"""Where a restore writes: ``--to original | user:<upn>[/<folder>] | site:<site>[/<path>]``.

``original`` puts every item back with its own owner, in its own folder or
path (missing folders are created). ``user:`` and ``site:`` name another
mailbox / OneDrive or SharePoint site; everything then goes under a folder,
``Restored <UTC time>`` unless given, so nothing is mixed silently into live
data. Folder paths use ``/`` between levels; ``.``, ``..`` and empty levels
are refused (ValueError), as are control characters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

ORIGINAL = "original"
USER = "user"
SITE = "site"


def default_folder(now: datetime | None = None) -> str:
    """``Restored 2026-07-08 14-30-05`` (UTC; no colons, which OneDrive refuses)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("Restored %Y-%m-%d %H-%M-%S")


def check_folder_name(name: str) -> str:
    """A folder name from the command line or a snapshot, checked for use in Microsoft 365.

    Raises ValueError for empty names, ``.``/``..``, slashes, backslashes and
    control characters (nothing from a snapshot may climb out of its target).
    """
    if not name.strip() or name in (".", ".."):
        raise ValueError(f"unusable folder name {name!r}")
    if any(ch in "/\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise ValueError(f"unusable folder name {name!r}")
    return name


@dataclass(frozen=True)
class RestoreTarget:
    """A parsed ``--to`` value."""

    kind: str  # original | user | site
    ref: str = ""  # the user (UPN or ID) or site (ID, URL or host:/path)
    folder: tuple[str, ...] = ()  # under the target's root; () for original
    explicit_folder: bool = False

    @property
    def alternate(self) -> bool:
        return self.kind != ORIGINAL

    def with_folder(self, name: str) -> RestoreTarget:
        return replace(self, folder=(check_folder_name(name),))

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "ref": self.ref, "folder": "/".join(self.folder)}

    def __str__(self) -> str:
        if self.kind == ORIGINAL:
            return ORIGINAL
        tail = "/" + "/".join(self.folder) if self.folder else ""
        return f"{self.kind}:{self.ref}{tail}"


def parse_target(text: str, now: datetime | None = None) -> RestoreTarget:
    """Parse a ``--to`` value. Raises ValueError with a one-line reason."""
    value = text.strip()
    if value == ORIGINAL:
        return RestoreTarget(ORIGINAL)
    kind, sep, rest = value.partition(":")
    if not sep or kind not in (USER, SITE) or not rest.strip("/"):
        raise ValueError(
            f"--to {text!r}: expected 'original', 'user:<upn>[/<folder>]' or 'site:<site>[/<path>]'"
        )
    if kind == USER:
        ref, _, folder = rest.partition("/")
    else:
        ref, folder = _split_site(rest)
    parts = tuple(check_folder_name(p) for p in folder.split("/") if p) if folder else ()
    if not ref:
        raise ValueError(f"--to {text!r}: no {kind} given")
    explicit = bool(parts)
    if not parts:
        parts = (default_folder(now),)
    return RestoreTarget(kind, ref, parts, explicit)


def _split_site(rest: str) -> tuple[str, str]:
    """Site reference and path: ``<id>/<path>``, ``<host>/sites/<name>/<path>`` or
    ``https://<host>/sites/<name>/<path>``."""
    text = rest.removeprefix("https://").removeprefix("http://")
    if "," in text.split("/", 1)[0]:
        ref, _, path = text.partition("/")  # a site ID: host,siteGuid,webGuid
        return ref, path
    host, _, tail = text.partition("/")
    parts = tail.split("/") if tail else []
    if len(parts) >= 2 and parts[0].lower() in ("sites", "teams"):
        return f"{host}/{parts[0]}/{parts[1]}", "/".join(parts[2:])
    return host, "/".join(parts)
