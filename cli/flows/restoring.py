"""What ``coffer restore`` and ``coffer find`` share: the filter options, the
readable restore summary, and the restore journal.

The journal (``<cache>/restores/<key>.json``, private to the user) names the
restore folder (``Restored <time>``) of a restore to another user or site by
the restore's request (its snapshots, target and filters): running the same
restore again, after an interruption or not, goes into the same folder and
so creates nothing twice. A different request gets a new folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from cli.ui.output import human_duration, human_size, note, print_json, shown
from sources.m365.restore import KIND_NAMES, ItemQuery, RestoreTarget, parse_when
from sources.m365.services import SERVICES
from store import Repository

F = TypeVar("F", bound=Callable[..., Any])


def filter_options(func: F) -> F:
    """The item filters (sources/m365/restore/query.py) as click options.

    The command receives ``owners`` and, instead of one argument per filter,
    their ``query`` (:func:`build_query`, which raises click.BadParameter).
    """
    options = [
        click.option("--owner", "owners", multiple=True, metavar="GLOB", help="Only these owners."),
        click.option(
            "--service",
            "services",
            multiple=True,
            type=click.Choice(SERVICES),
            help="Only these services (repeatable).",
        ),
        click.option(
            "--kind",
            "kinds",
            multiple=True,
            type=click.Choice(KIND_NAMES),
            help="Only these kinds of item (repeatable).",
        ),
        click.option(
            "--folder",
            "folders",
            multiple=True,
            metavar="GLOB",
            help="Only items in folders whose path by name matches (Inbox/Projects*).",
        ),
        click.option(
            "--include",
            "includes",
            multiple=True,
            metavar="GLOB",
            help="Only items whose path matches (a match on a folder includes what is in it).",
        ),
        click.option(
            "--subject",
            "--name",
            "subjects",
            multiple=True,
            metavar="TEXT",
            help="Subject, display name, file name or title (glob; plain text matches anywhere).",
        ),
        click.option(
            "--sender",
            "senders",
            multiple=True,
            metavar="TEXT",
            help="Mail sender (address or name).",
        ),
        click.option("--since", metavar="DATE", help="Received / start / modified on or after."),
        click.option(
            "--until", metavar="DATE", help="Received / start / modified before the end of."
        ),
    ]

    @functools.wraps(func)
    def with_query(*args: Any, **kwargs: Any) -> Any:
        filters = {name: kwargs.pop(name) for name in _QUERY_OPTIONS}
        return func(*args, query=build_query(**filters), **kwargs)

    command: Any = with_query
    for option in reversed(options):
        command = option(command)
    return cast(F, command)


# The options above that make the ItemQuery (``--owner`` picks snapshots, so it stays).
_QUERY_OPTIONS = (
    "services",
    "kinds",
    "folders",
    "includes",
    "subjects",
    "senders",
    "since",
    "until",
)


def build_query(
    services: tuple[str, ...],
    kinds: tuple[str, ...],
    folders: tuple[str, ...],
    includes: tuple[str, ...],
    subjects: tuple[str, ...],
    senders: tuple[str, ...],
    since: str | None,
    until: str | None,
) -> ItemQuery:
    """The query of the options. Raises click.BadParameter for unreadable dates."""
    try:
        start = parse_when(since) if since else None
        end = parse_when(until, end=True) if until else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return ItemQuery(
        services=services,
        kinds=kinds,
        folders=folders,
        includes=includes,
        subjects=subjects,
        senders=senders,
        since=start,
        until=end,
    )


# -- the journal ---------------------------------------------------------------------------------


def _journal_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / "restores" / f"{key}.json"


def journal_key(snapshots: list[str], target: RestoreTarget, query: ItemQuery) -> str:
    request = {
        "snapshots": sorted(snapshots),
        "target": [
            target.kind,
            target.ref,
            list(target.folder) if target.explicit_folder else None,
        ],
        "filters": query.describe(),
    }
    raw = json.dumps(request, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def journal_folder(cache_dir: Path, key: str) -> str | None:
    """The restore folder an earlier run of the same request used, if any."""
    try:
        data = json.loads(_journal_path(cache_dir, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    folder = data.get("folder") if isinstance(data, dict) else None
    return str(folder) if isinstance(folder, str) and folder else None


def journal_record(cache_dir: Path, key: str, folder: str, *, finished: bool) -> None:
    """Write the journal entry (atomically; mode 0600)."""
    path = _journal_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    entry = {"folder": folder, "finished": finished, "updated": datetime.now().isoformat()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(entry, handle)
    os.replace(tmp, path)


# -- the summary -----------------------------------------------------------------------------------


_VERBS = {
    "created": "create",
    "replaced": "replace",
    "kept_both": "keep both",
    "skipped": "skip",
    "failed": "fail",
}


def _counts(s: dict[str, Any], dry_run: bool) -> str:
    verbs = (
        ("would create", "would replace", "would keep both", "would skip", "would fail")
        if dry_run
        else ("created", "replaced", "kept both", "skipped", "failed")
    )
    keys = ("created", "replaced", "kept_both", "skipped", "failed")
    return ", ".join(f"{s[k]} {v}" for k, v in zip(keys, verbs, strict=True))


def summary_lines(report: dict[str, Any], *, limit: int = 10) -> list[str]:
    """A readable summary of a Microsoft 365 restore report (stored with it, and shown).

    Names are escaped (cli/ui/output.py ``shown``); the whole text is defanged
    when printed (messages may quote names too)."""
    lines: list[str] = []
    dry = bool(report.get("dry_run"))
    for owner in report["owners"]:
        services = owner["services"]
        total = {
            k: sum(int(s.get(k, 0)) for s in services.values())
            for k in ("created", "replaced", "kept_both", "skipped", "failed", "bytes_uploaded")
        }
        lines.append(
            f"{owner['kind']}/{shown(owner['name'])} (snapshot {owner['snapshot'][:8]} of "
            f"{owner['snapshot_time']}) -> {shown(owner['target'] or '?')}: {owner['status']}: "
            f"{_counts(total, dry)}; {human_size(total['bytes_uploaded'])} uploaded"
        )
        if owner.get("error"):
            lines.append(f"  error: {owner['error']}")
        for name, service in sorted(services.items()):
            reasons = service.get("skipped_reasons") or {}
            if reasons:
                why = "; ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
                lines.append(f"  {name}: skipped: {why}")
            lines.extend(
                f"  {name}: failed {shown(failed['item'], path=True)}: {failed['reason']}"
                for failed in service["failed_items"][:limit]
            )
            hidden = service["failed"] - min(limit, len(service["failed_items"]))
            if hidden > 0:
                lines.append(f"  {name}: ... and {hidden} more failed (see the report)")
            lines.extend(
                f"  {name}: would {_VERBS.get(p['action'], p['action'])}: "
                f"{shown(p['item'], path=True)}" + (f" ({p['reason']})" if p.get("reason") else "")
                for p in (service.get("planned", [])[:limit] if dry else [])
            )
            extra = len(service.get("planned", [])) - limit
            if dry and extra > 0:
                lines.append(f"  {name}: ... and {extra} more (see the report or --json)")
            lines.extend(f"  {name}: note: {message}" for message in service["notes"])
    lines.extend(f"notice: {notice}" for notice in report.get("notices", []))
    totals = report["totals"]
    lines.append(
        f"{totals['owners']} owner(s): {_counts(totals, dry)}; "
        f"{human_size(totals['bytes_uploaded'])} uploaded in {human_duration(report['seconds'])}"
        + (f", throttled {totals['throttled_seconds']:.0f}s" if totals["throttled_seconds"] else "")
    )
    return lines


def publish(repo: Repository, report: dict[str, Any], lines: list[str], as_json: bool) -> None:
    """Store a restore's report, its summary ``lines`` included, in ``repo``; then show
    the report as JSON (``as_json``) or the lines on standard error."""
    report["summary"] = "\n".join(lines)
    report["report"] = repo.save_report("restore", report)
    if as_json:
        print_json(report)
    else:
        for line in lines:
            note(line)
