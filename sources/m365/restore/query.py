"""Which items a restore or ``coffer find`` selects: the shared filter.

Every filter is optional; an item must pass all that are given. Text globs
are case-insensitive; a pattern without ``*``, ``?`` or ``[`` matches
anywhere in the text (``--subject invoice`` finds "Invoice #487").

- ``services``: mail, contacts, calendar, onedrive, sharepoint, teams
- ``kinds``: message, contact, event, file, list-item, post
- ``folders``: globs on the folder path by original names ("Inbox/Projects",
  "Documents/Reports", a library or list name first for sites); a folder
  that matches takes its subfolders with it
- ``includes``: globs on the path in the owner's tree; matching a folder
  takes what is in it (the ``--include`` of every restore)
- ``paths``: exact paths in the owner's tree (an item, or a folder and what
  is in it), compared literally: names hold ``[`` and ``]``
- ``subjects``: the subject of mail, events and posts, a contact's display
  name, a file's name, a list item's title
- ``senders``: a message's sender (address or display name)
- ``since`` / ``until``: received (mail), start (events), posted (posts),
  else last modified; ``until`` is exclusive

Pure and thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase

from sources.m365.restore.items import SnapItem
from sources.m365.services import service_of

_WILDCARDS = set("*?[")


def text_matches(text: str, pattern: str) -> bool:
    """Case-insensitive glob; a plain pattern matches as a substring."""
    text, pattern = text.casefold(), pattern.casefold()
    if not _WILDCARDS & set(pattern):
        return pattern in text
    return fnmatchcase(text, pattern)


def prefix_matches(path: str, patterns: tuple[str, ...]) -> bool:
    """True when ``path`` or one of its leading parts matches a glob."""
    parts = [p for p in path.split("/") if p]
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        if any(fnmatchcase(prefix.casefold(), p.casefold().strip("/")) for p in patterns):
            return True
    return False


def parse_when(text: str, *, end: bool = False) -> datetime:
    """A date (``2026-07-01``) or date and time (``2026-07-01T12:00``, UTC unless
    given). With ``end``, a bare date means the end of that day. Raises ValueError."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = datetime.fromisoformat(value).replace(tzinfo=UTC)
            if end and day.date() == datetime.max.date():
                return datetime.max.replace(tzinfo=UTC)  # the end of 9999-12-31
            return day + timedelta(days=1) if end else day
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ItemQuery:
    """The filters of one restore or find (see the module docstring)."""

    services: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    @property
    def narrows_items(self) -> bool:
        """True when something beyond services and paths is asked (then
        renderings and folders are restored only for the items chosen)."""
        return bool(
            self.kinds or self.folders or self.subjects or self.senders or self.since or self.until
        )

    def wants_service(self, service: str) -> bool:
        return not self.services or service in self.services

    def wants_dir(self, path: str) -> bool:
        """False when nothing under the directory ``path`` can match (prunes walks)."""
        service = service_of(path)
        if service is not None and not self.wants_service(service):
            return False
        if self.paths and not any(
            path == p or p.startswith(path + "/") or path.startswith(p + "/")
            for p in (q.strip("/") for q in self.paths)
        ):
            return False
        if self.includes:
            # Keep walking towards an include glob, or inside what one matched.
            if prefix_matches(path, self.includes):
                return True
            depth = path.count("/") + 1
            return any(
                fnmatchcase(path.casefold(), "/".join(p.strip("/").split("/")[:depth]).casefold())
                for p in self.includes
            )
        return True

    def matches(self, item: SnapItem) -> bool:
        if not self.wants_service(item.service):
            return False
        if self.kinds and item.kind not in self.kinds:
            return False
        if self.includes and not prefix_matches(item.path, self.includes):
            return False
        if self.paths and not any(
            item.path == p or item.path.startswith(p + "/")
            for p in (q.strip("/") for q in self.paths)
        ):
            return False
        if self.folders and not prefix_matches(item.folder, self.folders):
            return False
        if self.subjects and not any(text_matches(item.title, p) for p in self.subjects):
            return False
        if self.senders:
            senders = item.senders()
            if not any(text_matches(s, p) for s in senders for p in self.senders):
                return False
        if self.since is not None or self.until is not None:
            when = item.when
            if when is None:
                return False
            if self.since is not None and when < self.since:
                return False
            if self.until is not None and when >= self.until:
                return False
        return True

    def describe(self) -> dict[str, object]:
        """The filters as JSON-friendly values (for reports)."""
        out: dict[str, object] = {}
        for key in ("services", "kinds", "folders", "includes", "paths", "subjects", "senders"):
            value = getattr(self, key)
            if value:
                out[key] = list(value)
        if self.since is not None:
            out["since"] = self.since.isoformat()
        if self.until is not None:
            out["until"] = self.until.isoformat()
        return out
