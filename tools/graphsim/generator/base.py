"""Deterministic helpers for the tenant generator.

Everything derives from (tenant seed, a path of labels): the same seed gives the same
ids, names, sizes and content seeds on every run. Only timestamps depend on the day the
tenant was generated (`anchor`, midnight UTC), so relative ages ("received 3 days ago",
"posted within the last 8 months") stay meaningful.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
import random
import uuid
from typing import Any

from ..httpcore import iso


def _digest(seed: int, parts: tuple[object, ...]) -> bytes:
    text = "\x1f".join([str(seed), *(str(p) for p in parts)])
    return hashlib.sha256(text.encode()).digest()


class Gen:
    def __init__(self, seed: int, anchor: dt.datetime) -> None:
        self.seed = seed
        self.anchor = anchor

    def rng(self, *parts: object) -> random.Random:
        return random.Random(int.from_bytes(_digest(self.seed, parts)[:8], "big"))

    def number(self, *parts: object) -> int:
        """A stable 48-bit number (content seeds)."""
        return int.from_bytes(_digest(self.seed, parts)[:6], "big")

    def guid(self, *parts: object) -> str:
        return str(uuid.UUID(bytes=_digest(self.seed, parts)[:16], version=4))

    def outlook_id(self, prefix: str, *parts: object) -> str:
        raw = base64.urlsafe_b64encode(
            _digest(self.seed, parts) + _digest(self.seed, (*parts, 2))[:13]
        ).decode()
        return prefix + raw.rstrip("=")

    def drive_item_id(self, *parts: object) -> str:
        return "01" + base64.b32encode(_digest(self.seed, parts)).decode()[:32]

    def drive_id(self, *parts: object) -> str:
        return "b!" + base64.urlsafe_b64encode(
            _digest(self.seed, parts) + _digest(self.seed, (*parts, 1))[:1]
        ).decode().rstrip("=")

    def change_key(self, *parts: object) -> str:
        return base64.b64encode(_digest(self.seed, ("ck", *parts))[:21]).decode()

    def ago(self, rng: random.Random, max_days: float, min_days: float = 0.0) -> str:
        days = rng.uniform(min_days, max_days)
        return iso(self.anchor - dt.timedelta(days=days))

    def when(self, days: float, hour: int = 9, minute: int = 0) -> dt.datetime:
        base = self.anchor.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return base + dt.timedelta(days=days)


def log_size(rng: random.Random, low: int, high: int) -> int:
    """A size spread evenly on a log scale between low and high (inclusive)."""
    if high <= low:
        return low
    lo = math.log(max(1, low))
    return int(math.exp(rng.uniform(lo, math.log(high))))


def content_spec(
    gen: Gen, rng: random.Random, size: int, text: bool, head: str, *parts: object
) -> dict[str, Any]:
    if size == 0:
        return {"t": "empty"}
    if text:
        return {"t": "text", "seed": gen.number("text", *parts), "size": size}
    spec: dict[str, Any] = {"t": "rand", "seed": gen.number("rand", *parts), "size": size}
    if head:
        spec["head"] = head
    return spec
