"""The daily summary: every owner's last successful backup, and the owners whose
last success is older than ``stale_hours`` (or who have none).

Owners come from the repository's overview (cli/serve/overview.py): those of
the snapshots and those named by the stored backup reports, so an owner whose
every backup failed (no snapshot at all) is listed as never backed up, not
left out. ``coffer serve`` reads it from the console's cached overview,
``coffer schedule summary`` from the repository; without either,
``coffer snapshots --json`` in a child (snapshots' owners only). A snapshot
that is not partial is a success.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cli.schedules.config import SummarySettings
from cli.schedules.notify import Message
from cli.schedules.runner import CofferCommand
from cli.serve.overview import Overview
from store import ExitCode


@dataclass(frozen=True)
class OwnerLine:
    kind: str
    owner: str
    last_success: float | None

    def stale(self, now: float, stale_hours: float) -> bool:
        return self.last_success is None or now - self.last_success > stale_hours * 3600


def owners_of(snapshots: list[dict[str, Any]]) -> list[OwnerLine]:
    """One line per owner (kind, name), with its newest non-partial snapshot's time."""
    best: dict[tuple[str, str], float | None] = {}
    for snap in snapshots:
        key = (str(snap.get("owner_kind", "")), str(snap.get("owner", "")))
        best.setdefault(key, None)
        time_ns = snap.get("time_ns")
        if not snap.get("partial") and isinstance(time_ns, int):
            current = best[key]
            best[key] = max(current or 0.0, time_ns / 1e9)
    return [OwnerLine(kind, owner, t) for (kind, owner), t in sorted(best.items())]


def owners_of_overview(view: Overview) -> list[OwnerLine]:
    """One line per owner of the overview (snapshots and run reports)."""
    return sorted(
        (OwnerLine(o.kind, o.name, o.last_success) for o in view.owners),
        key=lambda o: (o.kind, o.owner),
    )


def summary_message(owners: list[OwnerLine], now: float, settings: SummarySettings) -> Message:
    stale = [o for o in owners if o.stale(now, settings.stale_hours)]
    lines = [f"{len(owners)} owner(s); {len(stale)} without a successful backup "
             f"in the last {settings.stale_hours:g} h."]  # fmt: skip
    if stale:
        lines.append("")
        lines.append("Stale:")
        lines.extend(f"  {o.kind}/{o.owner}: {_when(o.last_success)}" for o in stale)
    lines.append("")
    lines.append("Last successful backup per owner:")
    lines.extend(f"  {o.kind}/{o.owner}: {_when(o.last_success)}" for o in owners)
    subject = f"coffer: daily summary, {len(stale)} stale owner(s)"
    return Message(subject, "\n".join(lines), settings.email, settings.webhooks)


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def build_summary(
    coffer: CofferCommand,
    settings: SummarySettings,
    now: float,
    owners: list[OwnerLine] | None = None,
) -> Message:
    """The summary of ``owners``, or (None) of the snapshots read through a ``coffer``
    child. Raises RuntimeError when the child fails (its last error line)."""
    if owners is not None:
        return summary_message(owners, now, settings)
    done = coffer.run(["snapshots", "--json"])
    if done.returncode != ExitCode.OK:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(
            f"coffer snapshots exited with {done.returncode}: {lines[-1] if lines else ''}"
        )
    data = json.loads(done.stdout)
    return summary_message(owners_of(data if isinstance(data, list) else []), now, settings)
