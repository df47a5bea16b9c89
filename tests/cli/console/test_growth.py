"""The repository page's growth chart over a real repository: each backup's
stored bytes, the size measured by each prune and what it freed, and the size
measured now; forgetting and pruning a run keeps it in the history."""

from __future__ import annotations

import os
import re
from pathlib import Path

from starlette.testclient import TestClient

from cli.serve import create_app
from tests.cli.console.kit import make_setup
from tests.cli.console.test_http import sign_in

MIB = 1 << 20


def values(client: TestClient) -> list[tuple[int, str]]:
    page = client.get("/repository").text
    assert '<svg class="chart"' in page
    rows = re.findall(r'<td class="bytes">(\d+)</td><td class="event">([^<]+)</td>', page)
    return [(int(b), e) for b, e in rows]


def test_growth_survives_forget_and_prune_and_ends_at_the_measured_size(tmp_path: Path) -> None:
    setup = make_setup(tmp_path / "s")
    big = tmp_path / "big"
    big.mkdir()
    (big / "random.bin").write_bytes(os.urandom(2 * MIB))  # does not compress
    setup.env.run("backup", "--path", str(big))
    with setup.serving() as console, TestClient(create_app(console), follow_redirects=False) as c:
        sign_in(c, "val")
        before = values(c)
    assert [e for _, e in before] == ["backup", "backup", "now: measured"]
    assert before[1][0] - before[0][0] >= 2 * MIB  # the random file, stored
    stats = setup.env.run("stats", "--json").json()
    assert before[-1][0] == stats["repository_bytes"]

    # Forget the big folder's snapshot and prune it away (marked, then deleted).
    snaps = setup.env.run("snapshots", "--json").json()
    [gone] = [s["id"] for s in snaps if s["owner"].endswith(str(big))]
    setup.env.run("forget", gone)
    setup.env.run("prune", "--grace", "0h")
    setup.env.run("prune", "--grace", "0h")
    with setup.serving() as console, TestClient(create_app(console), follow_redirects=False) as c:
        sign_in(c, "val")
        after = values(c)
    events = [e for _, e in after]
    # Both runs are still in the history; the prunes measured and freed.
    assert events[:2] == ["backup", "backup"]
    assert "prune: freed" in events
    assert events[-1] == "now: measured"
    peak = max(b for b, _ in after)
    assert peak >= before[1][0]
    assert after[-1][0] < MIB  # the random file is gone
    assert after[-1][0] == setup.env.run("stats", "--json").json()["repository_bytes"]
