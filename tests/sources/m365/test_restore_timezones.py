"""A weekly meeting keeps its wall-clock time across daylight saving changes when it
is backed up and restored: restore creates it in its own zone, not pinned to UTC.

Each series starts in January and runs 48 weeks, so it spans the March and
October changes in Europe/Berlin and the March and November changes in
America/New_York. The restored occurrences are read back through Graph in the
series' own zone (``Prefer: outlook.timezone``) and compared with the originals.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from sources.m365.restore import ItemQuery
from tests.sources.m365.support.restoring import Graph, failures, restore, totals
from tests.sources.m365.support.tenant import Setup

pytestmark = pytest.mark.sim

ZONES = {
    "Europe/Berlin": "Weekly in Berlin",
    "Eastern Standard Time": "Weekly in New York",  # a Windows name, as Outlook sets it
}
WEEKS = 48


def _first_monday() -> dt.date:
    year = dt.datetime.now(dt.UTC).year + 1
    day = dt.date(year, 1, 4)
    return day + dt.timedelta(days=(7 - day.weekday()) % 7)


def _series(g: Graph, uid: str, zone: str, subject: str, start: dt.date) -> dict[str, Any]:
    body = {
        "subject": subject,
        "start": {"dateTime": f"{start.isoformat()}T09:00:00", "timeZone": zone},
        "end": {"dateTime": f"{start.isoformat()}T09:30:00", "timeZone": zone},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {
                "type": "numbered",
                "startDate": start.isoformat(),
                "numberOfOccurrences": WEEKS,
            },
        },
    }
    resp = g.session.post(g.tenant.url(f"/users/{uid}/events"), json=body, timeout=60)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _local_starts(g: Graph, uid: str, event_id: str, zone: str, start: dt.date) -> list[str]:
    """The occurrences' start times in ``zone``, read through Graph."""
    rows = g.all(
        f"/users/{uid}/events/{event_id}/instances",
        headers={"Prefer": f'outlook.timezone="{zone}"'},
        startDateTime=f"{start.isoformat()}T00:00:00Z",
        endDateTime=f"{(start + dt.timedelta(weeks=WEEKS + 1)).isoformat()}T00:00:00Z",
    )
    return sorted(str(r["start"]["dateTime"]) for r in rows)


def test_weekly_series_keep_their_local_time_across_dst(setup: Setup) -> None:
    g = Graph(setup.tenant)
    uid, upn = g.user()["id"], g.user()["userPrincipalName"]
    start = _first_monday()
    originals: dict[str, list[str]] = {}
    for zone, subject in ZONES.items():
        master = _series(g, uid, zone, subject, start)
        originals[zone] = _local_starts(g, uid, master["id"], zone, start)
        assert len(originals[zone]) == WEEKS
        # Every occurrence at 09:00 local: the offset from UTC changes twice a year.
        assert {s[11:16] for s in originals[zone]} == {"09:00"}
    assert setup.backup()["status"] == "ok"
    for row in g.all(f"/users/{uid}/events"):
        if row["subject"] in ZONES.values():
            g.delete(f"/users/{uid}/events/{row['id']}")

    report = restore(
        setup.repo,
        setup.cache,
        setup.state,
        owner=upn,
        query=ItemQuery(services=("calendar",), subjects=tuple(ZONES.values())),
    )
    assert failures(report) == []
    assert totals(report)["created"] == len(ZONES)
    restored = {r["subject"]: r for r in g.all(f"/users/{uid}/events")}
    for zone, subject in ZONES.items():
        event = restored[subject]
        assert event["originalStartTimeZone"] == zone
        assert _local_starts(g, uid, event["id"], zone, start) == originals[zone]
