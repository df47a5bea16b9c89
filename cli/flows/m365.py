"""The command line's side of a Microsoft 365 backup: progress (restores too) and the summary."""

from __future__ import annotations

import logging
from typing import Any

from cli.ui.output import human_duration, human_size, shown
from cli.ui.progress import Progress


class ProgressAdapter:
    """Feeds a backup's or a restore's events into the progress display (thread-safe)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def item(self, name: str, size: int) -> None:
        self.progress.item(name, size)

    def owners(self, total: int) -> None:
        self.progress.owners_total = total

    def planned(self, items: int, size: int) -> None:
        """A restore's total, known in advance (shown as done/total)."""
        self.progress.items_total = items

    def owner_done(self, name: str) -> None:
        self.progress.owners_done += 1

    def throttled(self, seconds: float) -> None:
        self.progress.throttled_seconds += seconds


def _counts(stats: dict[str, Any]) -> str:
    return (
        f"{stats['items_new']} new, {stats['items_changed']} changed, "
        f"{stats['items_deleted']} deleted, {stats['items_unchanged']} unchanged"
        + (f", {stats['items_skipped']} skipped" if stats.get("items_skipped") else "")
        + (f", {stats['items_excluded']} excluded" if stats.get("items_excluded") else "")
    )


def quiet_http_logs() -> None:
    """Keep HTTP libraries' debug logs out: they would print pre-authenticated
    download URLs (which work without a token until they expire)."""
    for name in ("urllib3", "msal", "requests"):
        logging.getLogger(name).setLevel(logging.INFO)


def summary_lines(report: dict[str, Any], *, limit: int = 10) -> list[str]:
    """A readable summary of a Microsoft 365 run report (stored with it, and shown).

    Names are escaped (cli/ui/output.py ``shown``); the whole text is defanged
    when printed (messages may quote names too)."""
    lines: list[str] = []
    note = lines.append
    for owner in report["owners"]:
        services = owner["services"]
        total = {
            key: sum(int(s.get(key, 0)) for s in services.values())
            for key in (
                "items_new",
                "items_changed",
                "items_deleted",
                "items_unchanged",
                "items_skipped",
                "items_excluded",
                "bytes_read",
                "bytes_added",
            )
        }
        snap = f"snapshot {owner['snapshot'][:8]}" if owner.get("snapshot") else "no snapshot"
        throttled = (
            f", throttled {owner['throttled_seconds']:.0f}s" if owner["throttled_seconds"] else ""
        )
        note(
            f"{owner['kind']}/{shown(owner['name'])}: {owner['status']}, {snap}: {_counts(total)}; "
            f"{human_size(total['bytes_read'])} read, {human_size(total['bytes_added'])} new"
            f"{throttled}"
        )
        if owner.get("error"):
            note(f"  error: {owner['error']}")
        for name, service in sorted(services.items()):
            if service["status"] == "failed":
                note(f"  {name}: failed: {service.get('error')}")
            for skipped in service["skipped"][:limit]:
                note(f"  {name}: skipped {shown(skipped['item'], path=True)}: {skipped['reason']}")
            hidden = service["items_skipped"] - min(limit, len(service["skipped"]))
            if hidden > 0:
                note(f"  {name}: ... and {hidden} more skipped (see the report)")
            for message in service["notes"][:limit]:
                note(f"  {name}: note: {message}")
            for failed in service.get("failed", [])[:limit]:
                # An item Microsoft 365 will not hand out: named with its error code
                # (new ones make the run partial once; known ones are only listed).
                when = "new" if failed.get("new") else f"since {failed.get('first_seen')}"
                note(
                    f"  {name}: unreadable ({when}) {failed.get('path')}: "
                    f"{failed.get('code')}: {failed.get('message')}"
                )
    for skipped_owner in report.get("owners_skipped", []):
        note(
            f"not backed up: {skipped_owner['kind']}/{skipped_owner['name']}: "
            f"{skipped_owner['reason']}"
        )
    for problem in report.get("problems", []):
        note(f"problem: {problem}")
    totals = report["totals"]
    repo = report["repository"]
    note(
        f"{totals['owners']} owners ({totals['owners_ok']} ok, {totals['owners_partial']} partial, "
        f"{totals['owners_failed']} failed, {totals['owners_not_applicable']} not applicable): "
        f"{_counts(totals)}; {human_size(totals['bytes_read'])} read, "
        f"{human_size(repo['bytes_added_stored'])} added to the repository "
        f"in {human_duration(report['seconds'])}"
        + (f", throttled {totals['throttled_seconds']:.0f}s" if totals["throttled_seconds"] else "")
    )
    return lines
