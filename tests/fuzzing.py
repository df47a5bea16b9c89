"""Shared settings and strategies of the fuzzing suite (docs/fuzzing.md).

``COFFER_FUZZ_EXAMPLES`` sets how many inputs each target tries: 100 in
``make test`` (the whole suite adds under a minute), 2000 in
``make test-full``. It is read when the tests are collected, before the
per-test fixture clears ``COFFER_*`` variables. No example database is kept
(``database=None``): runs are reproducible from the seed hypothesis prints on
failure, and nothing is written into the work tree.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("COFFER_FUZZ_EXAMPLES", "100"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Inputs here are at most a few KiB: any parse peaking above this allocated
# in proportion to a claimed length, not to the input.
PEAK_LIMIT = 80 * 1024 * 1024

# How many inputs each target ran in this process (for docs/fuzzing.md).
TRIED: dict[str, int] = {}

MISSING = object()

# Values that break careless parsers: int(inf) overflows, int(nan) and
# bytes(-1) raise ValueError, bytes(2**40) tries to allocate a terabyte.
nasty = st.sampled_from(
    [float("inf"), float("-inf"), float("nan"), 2**40, 2**63 - 1, 2**64 - 1, -(2**63), -1]
)

scalars = st.one_of(
    nasty,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=40),
)

# msgpack integers are int64 or uint64.
map_keys = st.one_of(st.text(max_size=6), st.integers(-(2**63), 2**64 - 1))

# Any value msgpack can carry.
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(map_keys, inner, max_size=4),
    ),
    max_leaves=12,
)

json_scalars = st.one_of(
    nasty.filter(lambda v: isinstance(v, int)),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def maybe(valid: st.SearchStrategy[Any], anything: st.SearchStrategy[Any] = values) -> Any:
    """Mostly a valid field, sometimes a nasty value or anything, sometimes absent."""
    return st.one_of(valid, valid, nasty, anything, st.just(MISSING))


def record(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A map whose fields are drawn from ``fields`` (MISSING ones left out)."""
    return st.fixed_dictionaries(fields).map(
        lambda d: {k: v for k, v in d.items() if v is not MISSING}
    )


@st.composite
def mutated(draw: st.DrawFn, encoded: st.SearchStrategy[bytes]) -> bytes:
    """An encoding, sometimes with bytes replaced, cut off, or inserted."""
    raw = bytearray(draw(encoded))
    # Half the inputs stay well-formed msgpack/JSON, to reach the field checks.
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        action = draw(st.sampled_from(("flip", "cut", "insert")))
        where = draw(st.integers(0, len(raw)))
        if action == "flip" and raw:
            raw[min(where, len(raw) - 1)] = draw(st.integers(0, 255))
        elif action == "cut":
            del raw[where:]
        else:
            raw[where:where] = draw(st.binary(min_size=1, max_size=8))
    return bytes(raw)


def bounded(
    target: str, action: Callable[[], object], allowed: tuple[type[BaseException], ...]
) -> None:
    """Run ``action``: it may raise only ``allowed``, and must stay under PEAK_LIMIT."""
    TRIED[target] = TRIED.get(target, 0) + 1
    tracemalloc.start()
    try:
        action()
    except allowed:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{target}: peak {peak} bytes"
