"""Routing of Graph requests to handlers.

Patterns are paths relative to `/v1.0` with `{name}` placeholders, matched segment by
segment (literals case-insensitively, as Graph does: `mailFolders` = `mailfolders`).
`normalize_path` first rewrites Graph's alternative spellings into one canonical form:

- drive path addressing (driveitem-get.md, "Access a driveItem by path"):
  `/drives/D/root:/a/b.txt:/content` -> `/drives/D/items/root/content`, `item_path="a/b.txt"`
  and `/drives/D/items/P:/name:/...` -> `/drives/D/items/P/...`, `item_path="name"`;
- `root` as an item: `/drives/D/root/...` -> `/drives/D/items/root/...`;
- function call syntax: `delta()`, `microsoft.graph.delta`, `delta(token='x')`;
- `/me/...` -> `/users/me/...` (resolved to the signed-in user by the pipeline).

Each route declares which throttling bucket it belongs to (`service`), which path
parameter names the mailbox/owner, and its SharePoint resource-unit cost.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from .httpcore import GraphError, Request, Response

Handler = Callable[[Request], Response]

_PATH_ADDR = re.compile(
    r"^(?P<prefix>.*?/(?:root|items/[^/:]+)):(?P<path>/?[^:]*)(?::(?P<rest>.*))?$"
)
_FUNC = re.compile(r"^(?:microsoft\.graph\.)?(?P<name>[A-Za-z]+)\((?P<args>.*)\)$")


@dataclass
class Route:
    method: str
    pattern: str
    handler: Handler
    service: str = "other"  # outlook | sharepoint | teams | directory | other
    owner_param: str = ""  # path parameter naming the mailbox / drive / site / team
    units: int = 1  # SharePoint resource units (1 single item, 2 collection or write)
    channel_get: bool = False  # Teams "GET channel message" limit
    download: bool = False  # counts as a content download in stats
    segments: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.segments = [s for s in self.pattern.strip("/").split("/") if s]

    @property
    def name(self) -> str:
        return f"{self.method} {self.pattern}"


@dataclass
class Normalized:
    path: str  # canonical path relative to /v1.0, decoded segments joined by "/"
    segments: list[str]
    item_path: str | None = None
    extra_query: dict[str, str] = field(default_factory=dict)


def normalize_path(raw_path: str) -> Normalized:
    """Canonicalise a Graph path (percent-encoded, without the /v1.0 prefix)."""
    item_path: str | None = None
    extra: dict[str, str] = {}
    m = _PATH_ADDR.match(raw_path)
    if m and ("/root:" in raw_path or re.search(r"/items/[^/:]+:", raw_path)):
        prefix, path, rest = m.group("prefix"), m.group("path"), m.group("rest") or ""
        item_path = unquote(path).strip("/")
        raw_path = prefix + rest
    raw_segments = [s for s in raw_path.split("/") if s]
    segments: list[str] = []
    for raw in raw_segments:
        seg = unquote(raw)
        fm = _FUNC.match(seg)
        if fm:
            seg = fm.group("name")
            args = fm.group("args")
            for part in args.split(","):
                if "=" in part:
                    k, _, v = part.partition("=")
                    extra[k.strip()] = v.strip().strip("'")
        elif seg.lower().startswith("microsoft.graph."):
            seg = seg[len("microsoft.graph.") :]
        segments.append(seg)
    # Site addressing by server-relative path: /sites/{host}:/sites/{name}[:/rest]
    # (site-getbypath.md) becomes one segment "{host}:/sites/{name}".
    if len(segments) >= 2 and segments[0].lower() == "sites" and segments[1].endswith(":"):
        joined = "/".join(segments[1:])
        host, _, tail = joined.partition(":")
        site_path, _, rest = tail.partition(":")
        segments = ["sites", f"{host}:{site_path.rstrip('/')}", *[s for s in rest.split("/") if s]]
    # "root" of a drive is an item: /drives/{d}/root and /{owner}/drive/root.
    out: list[str] = []
    for i, seg in enumerate(segments):
        after_drive = i > 0 and segments[i - 1].lower() == "drive"
        after_drives = i > 1 and segments[i - 2].lower() == "drives"
        if seg.lower() == "root" and (after_drive or after_drives):
            out.extend(["items", "root"])
        else:
            out.append(seg)
    if out and out[0].lower() == "me":
        out = ["users", "me", *out[1:]]
    return Normalized("/" + "/".join(out), out, item_path, extra)


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, **kw: object) -> None:
        self._routes.append(Route(method, pattern, handler, **kw))  # type: ignore[arg-type]

    def match(self, method: str, segments: list[str]) -> tuple[Route, dict[str, str]]:
        """Find the route; raises GraphError 404 (no such path) or 405 (wrong method)."""
        path_matched = False
        for route in self._routes:
            params = _match(route.segments, segments)
            if params is None:
                continue
            path_matched = True
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, params
        if path_matched:
            raise GraphError(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )
        raise GraphError(
            400,
            "BadRequest",
            f"Resource not found for the segment '{segments[-1] if segments else ''}'.",
        )

    def routes(self) -> list[Route]:
        return list(self._routes)


def _match(pattern: list[str], segments: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for p, s in zip(pattern, segments, strict=True):
        if p.startswith("{") and p.endswith("}"):
            params[p[1:-1]] = s
        elif p.lower() != s.lower():
            return None
    return params
