"""Calendar behaviour: recurrence, exceptions, cancelled occurrences, invitations."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from tools.graphsim.services import recurrence as rc
from tools.graphsim.testing import RunningTenant

from .probe import collect, get

pytestmark = pytest.mark.sim

FMT = "%Y-%m-%dT%H:%M:%S"


def _window(days_before: int, days_after: int) -> str:
    now = dt.datetime.now(dt.UTC)
    start = (now - dt.timedelta(days=days_before)).strftime(FMT)
    end = (now + dt.timedelta(days=days_after)).strftime(FMT)
    return f"startDateTime={start}Z&endDateTime={end}Z"


@pytest.fixture
def ctx(fresh_tenant: RunningTenant) -> tuple[RunningTenant, requests.Session, str]:
    upn = next(u["userPrincipalName"] for u in fresh_tenant.admin.users() if u["purpose"] == "user")
    return fresh_tenant, fresh_tenant.graph(), upn


def test_series_with_exception_and_cancelled_occurrence(
    ctx: tuple[RunningTenant, requests.Session, str],
) -> None:
    t, s, upn = ctx
    events = collect(s, t.url(f"/users/{upn}/events"))
    weekly = next(e for e in events if e["subject"] == "Weekly sync")
    assert weekly["type"] == "seriesMaster"
    assert weekly["recurrence"]["pattern"]["type"] == "weekly"
    instances = collect(
        s, t.url(f"/users/{upn}/events/{weekly['id']}/instances?{_window(60, 120)}")
    )
    kinds = [i["type"] for i in instances]
    assert kinds.count("exception") == 1
    assert len(instances) == 12  # 13 weekly dates, one cancelled
    assert all(i["seriesMasterId"] == weekly["id"] for i in instances)
    exception = next(i for i in instances if i["type"] == "exception")
    assert exception["subject"] == "Weekly sync (moved)"
    assert exception["originalStart"]
    occurrence = next(i for i in instances if i["type"] == "occurrence")
    assert get(s, t.url(f"/users/{upn}/events/{occurrence['id']}"))["id"] == occurrence["id"]
    # Changing an occurrence makes it an exception; deleting one cancels it.
    patched = s.patch(
        t.url(f"/users/{upn}/events/{occurrence['id']}"), json={"subject": "Special"}
    ).json()
    assert patched["type"] == "exception"
    assert patched["id"] == occurrence["id"]
    other = next(i for i in instances if i["type"] == "occurrence" and i["id"] != occurrence["id"])
    assert s.delete(t.url(f"/users/{upn}/events/{other['id']}")).status_code == 204
    after = collect(s, t.url(f"/users/{upn}/events/{weekly['id']}/instances?{_window(60, 120)}"))
    assert len(after) == 11
    assert {i["id"] for i in after if i["type"] == "exception"} >= {occurrence["id"]}
    assert s.get(t.url(f"/users/{upn}/calendarView")).status_code == 400


def test_recurrence_patterns() -> None:
    start = {"dateTime": "2024-01-31T09:00:00", "timeZone": "W. Europe Standard Time"}
    end = {"dateTime": "2024-01-31T10:00:00", "timeZone": "W. Europe Standard Time"}
    window = (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    monthly = {
        "start": start,
        "end": end,
        "recurrence": {
            "pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
            "range": {"type": "noEnd", "startDate": "2024-01-31"},
        },
    }
    days = [d for d, _, _ in rc.occurrences(monthly, *window)]
    assert [d.month for d in days] == [1, 3, 5, 7, 8, 10, 12]  # months with 31 days
    first_occ = rc.occurrences(monthly, *window)[0]
    assert first_occ[1].hour == 8  # 09:00 in Berlin is 08:00 UTC in winter
    relative = {
        "start": start,
        "end": end,
        "recurrence": {
            "pattern": {
                "type": "relativeMonthly",
                "interval": 2,
                "daysOfWeek": ["friday"],
                "index": "last",
            },
            "range": {"type": "numbered", "startDate": "2024-01-01", "numberOfOccurrences": 3},
        },
    }
    assert [d.isoformat() for d, _, _ in rc.occurrences(relative, *window)] == [
        "2024-01-26",
        "2024-03-29",
        "2024-05-31",
    ]
    weekly = {
        "start": start,
        "end": end,
        "recurrence": {
            "pattern": {
                "type": "weekly",
                "interval": 2,
                "daysOfWeek": ["monday", "thursday"],
                "firstDayOfWeek": "sunday",
            },
            "range": {"type": "endDate", "startDate": "2024-01-01", "endDate": "2024-01-31"},
        },
    }
    assert [d.day for d, _, _ in rc.occurrences(weekly, *window)] == [1, 4, 15, 18, 29]
    yearly = {
        "start": start,
        "end": end,
        "recurrence": {
            "pattern": {"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29},
            "range": {"type": "noEnd", "startDate": "2024-01-01"},
        },
    }
    assert [
        d.isoformat()
        for d, _, _ in rc.occurrences(
            yearly, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2029, 1, 1, tzinfo=dt.UTC)
        )
    ] == ["2024-02-29", "2028-02-29"]
    occ = rc.occurrence_id("MASTER", dt.date(2024, 5, 6))
    assert rc.parse_occurrence_id(occ) == ("MASTER", dt.date(2024, 5, 6))


def test_writes_record_the_invitations_they_would_send(
    ctx: tuple[RunningTenant, requests.Session, str],
) -> None:
    t, s, upn = ctx
    t.admin.clear_invitations()
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
    solo = s.post(
        t.url(f"/users/{upn}/events"),
        json={
            "subject": "Alone",
            "start": {"dateTime": start.strftime(FMT), "timeZone": "UTC"},
            "end": {"dateTime": (start + dt.timedelta(hours=1)).strftime(FMT), "timeZone": "UTC"},
        },
    )
    assert solo.status_code == 201
    assert t.admin.invitations() == []
    attendees = [
        {"type": "required", "emailAddress": {"address": "guest@fabrikam.com", "name": "Guest"}},
        {"type": "optional", "emailAddress": {"address": upn}},
    ]
    meeting = s.post(
        t.url(f"/users/{upn}/calendar/events"),
        json={
            "subject": "Meet",
            "attendees": attendees,
            "start": {"dateTime": start.strftime(FMT), "timeZone": "Pacific Standard Time"},
            "end": {
                "dateTime": (start + dt.timedelta(hours=1)).strftime(FMT),
                "timeZone": "Pacific Standard Time",
            },
        },
    ).json()
    assert meeting["start"]["timeZone"] == "UTC"  # returned in UTC unless Prefer: outlook.timezone
    invites = t.admin.invitations()
    assert [(i["kind"], i["attendees"]) for i in invites] == [("request", ["guest@fabrikam.com"])]
    s.patch(
        t.url(f"/users/{upn}/events/{meeting['id']}"), json={"location": {"displayName": "Room 2"}}
    )
    s.patch(
        t.url(f"/users/{upn}/events/{meeting['id']}"), json={"categories": ["Red category"]}
    )  # no notice
    s.delete(t.url(f"/users/{upn}/events/{meeting['id']}"))
    assert [i["kind"] for i in t.admin.invitations()] == ["request", "update", "cancellation"]
    local = get(
        s,
        t.url(f"/users/{upn}/events/{solo.json()['id']}"),
        headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'},
    )
    assert local["start"]["timeZone"] == "Pacific Standard Time"
