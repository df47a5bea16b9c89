"""Fault injection for Graph, download and upload requests.

A `FaultRule` matches requests by method and a regular expression on the request target
("METHOD /v1.0/users/...?query", or "/_dl/..." for downloads) and fires with probability
`rate` (a seeded PRNG, so runs are reproducible), at most `count` times. Kinds:

    "429"          429 TooManyRequests with Retry-After
    "503"          503 serviceNotAvailable with Retry-After
    "504"          504 GatewayTimeout
    "500"          500 generalException
    "drop"         close the connection without answering (nothing executed)
    "drop_mid"     execute, send the headers and half the body, then close
    "slow"         wait `delay` seconds before executing (holds concurrency slots)
    "commit_drop"  execute the request (a write is committed), then close without answering

Expired delta tokens are not a rule: `POST /_sim/delta/expire` invalidates tokens.
Thread-safe.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("429", "503", "504", "500", "drop", "drop_mid", "slow", "commit_drop")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class FaultRule:
    kind: str
    match: str = ""  # regex searched in "METHOD target"
    methods: list[str] = field(default_factory=list)  # empty: all (commit_drop: writes)
    rate: float = 1.0
    count: int | None = None
    retry_after: int = 1
    delay: float = 1.0
    fired: int = 0
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        self._regex = re.compile(self.match) if self.match else None
        self.methods = [m.upper() for m in self.methods]
        if self.kind == "commit_drop" and not self.methods:
            self.methods = list(WRITE_METHODS)

    def matches(self, method: str, target: str) -> bool:
        if self.methods and method.upper() not in self.methods:
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        return self._regex is None or bool(self._regex.search(f"{method.upper()} {target}"))

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("_regex", None)
        return out


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)

    def add(self, rules: list[dict[str, Any]], seed: int | None = None) -> list[FaultRule]:
        """Add rules (dicts with FaultRule fields). Raises ValueError on a bad rule."""
        built = [
            FaultRule(**{k: v for k, v in r.items() if k in FaultRule.__dataclass_fields__})
            for r in rules
        ]
        with self._lock:
            if seed is not None:
                self._rng = random.Random(seed)
            self._rules.extend(built)
        return built

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.describe() for r in self._rules]

    def pick(self, method: str, target: str, exclude: tuple[str, ...] = ()) -> FaultRule | None:
        """The first matching rule that fires for this request, if any (counts it).

        `exclude` skips kinds that cannot apply (connection faults inside a $batch)."""
        with self._lock:
            for rule in self._rules:
                if rule.kind in exclude or not rule.matches(method, target):
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                rule.fired += 1
                return rule
        return None
