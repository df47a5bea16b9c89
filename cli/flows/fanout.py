"""Sending every backup to each configured destination (cli/settings/destinations.py).

``coffer backup`` without ``-r``/``COFFER_REPO`` and with two destinations or
more backs up once, to the first destination that opens (so the source is
read once), then copies the run's new complete snapshots to each of the
others (store/copy/copier.py). A destination that fails (it cannot be opened, or the
copy fails) is reported and the others go on; the exit code is then 3 (or the
backup's own code if that is worse). A destination that missed runs catches
up with ``coffer copy --from FIRST --to NAME``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from cli.app import App
from cli.errors import CliError
from cli.flows.copying import run_copy
from cli.settings.destinations import Destination
from cli.ui.output import human_duration, human_size, note
from store import ExitCode, Repository, Snapshot, redact_text, redact_url

F = TypeVar("F", bound=Callable[..., int])


class NoDestination(CliError):
    """No configured destination could be opened."""


def send_to_destinations(backup: F) -> F:
    """Decorate ``coffer backup``'s function with the fan-out described above.

    Without two destinations, or with ``-r``/``COFFER_REPO``, the backup runs
    as it is. The backup's own ``--json`` document gains a ``destinations``
    member; without ``--json`` one line per destination follows its summary.
    """

    @functools.wraps(backup)
    def run(app: App, /, *args: Any, **kwargs: Any) -> int:
        destinations = app.destinations()
        if len(destinations) < 2 or app.repository_chosen():
            return backup(app, *args, **kwargs)
        as_json = bool(kwargs.get("as_json"))
        return _fan_out(app, destinations, lambda: backup(app, *args, **kwargs), as_json)

    return run  # type: ignore[return-value]


def _failure(destination: Destination, role: str, exc: BaseException) -> dict[str, Any]:
    return {
        "name": destination.name,
        "repository": redact_url(destination.target.url),
        "role": role,
        "status": "failed",
        "error": redact_text(str(exc), destination.target.url) or type(exc).__name__,
        "exit_code": int(getattr(exc, "exit_code", ExitCode.ERROR)),
    }


@contextlib.contextmanager
def _json_document(enabled: bool, extra: dict[str, Any]) -> Iterator[None]:
    """Hold back what the wrapped command prints, then print it with ``extra`` merged in.

    Standard output carries a single JSON document with --json, so the
    destinations' results go into the backup's own document.
    """
    if not enabled:
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        text = buffer.getvalue()
        try:
            document = json.loads(text) if text.strip() else None
        except ValueError:
            document = None
        if isinstance(document, dict):
            document.update(extra)
            text = json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"
        sys.stdout.write(text)
        sys.stdout.flush()


def _fan_out(
    app: App, destinations: list[Destination], backup: Callable[[], int], as_json: bool
) -> int:
    results: list[dict[str, Any]] = []
    primary: Repository | None = None
    rest: list[Destination] = []
    for position, destination in enumerate(destinations):
        try:
            primary = app.open_target(destination.target, own_file_first=True)
        except Exception as exc:  # any failure makes it unusable now
            results.append(_failure(destination, "backup", exc))
            continue
        results.append(
            {
                "name": destination.name,
                "repository": redact_url(destination.target.url),
                "role": "backup",
                "status": "ok",
            }
        )
        rest = destinations[position + 1 :]
        break
    if primary is None:
        failed = "; ".join(f"{r['name']}: {r['error']}" for r in results)
        error = NoDestination(f"no destination could be opened: {failed}")
        error.exit_code = int(results[0]["exit_code"])
        raise error
    app.use_repo(primary)
    extra: dict[str, Any] = {"destinations": results}
    with _json_document(as_json, extra):
        before = set(primary.list_snapshot_ids())
        code = backup()
        new = sorted(
            (
                snapshot
                for snapshot in map(
                    primary.load_snapshot, set(primary.list_snapshot_ids()) - before
                )
                if not snapshot.partial
            ),
            key=lambda s: s.time_ns,
        )
        results[-1]["snapshots"] = len(new)
        results.extend(_copy_to(app, primary, d, new, quiet=as_json) for d in rest)
    if not as_json:
        for result in results:
            if result["status"] != "ok":
                note(f"destination {result['name']}: failed: {result['error']}")
            elif result["role"] == "backup":
                note(f"destination {result['name']}: backed up ({result['snapshots']} snapshots)")
            else:
                note(
                    f"destination {result['name']}: copied {result['copied']} snapshots "
                    f"({human_size(result['bytes_added'])} added) "
                    f"in {human_duration(result['seconds'])}"
                )
    if any(r["status"] != "ok" for r in results) and code == ExitCode.OK:
        return ExitCode.PARTIAL
    return code


def _copy_to(
    app: App, source: Repository, destination: Destination, snapshots: list[Snapshot], quiet: bool
) -> dict[str, Any]:
    """Copy the run's snapshots to one more destination; failures become a result."""
    started = time.monotonic()
    try:
        repo = app.open_target(destination.target, own_file_first=True)
        try:
            summary = run_copy(
                source,
                repo,
                snapshots,
                title=f"copy to {destination.name}",
                progress=not (app.quiet or quiet),
            )
        finally:
            app.close_repo(repo)
    except Exception as exc:  # one destination never fails the others
        if app.debug:
            traceback.print_exc()
        result = _failure(destination, "copy", exc)
        result["seconds"] = round(time.monotonic() - started, 3)
        return result
    failed = summary["failed"]
    return {
        "name": destination.name,
        "repository": redact_url(destination.target.url),
        "role": "copy",
        "status": "failed" if failed else "ok",
        "error": redact_text(
            "; ".join(f"{f['owner']}: {f['error']}" for f in failed), destination.target.url
        )
        or None,
        "copied": len(summary["copied"]),
        "already_present": len(summary["already_present"]),
        "bytes_added": summary["stats"]["bytes_added"],
        "seconds": round(time.monotonic() - started, 3),
        "report": summary.get("report"),
        "exit_code": ExitCode.PARTIAL if failed else ExitCode.OK,
    }
