"""Several destinations: their configuration, and sending every backup to each.

In ``coffer.toml`` (relative paths are relative to the file)::

    limit_upload = 4096            # KiB/s, optional: for every repository
    [[destination]]
    name = "nas"                   # required, unique: letters, digits, . _ -
    repository = "/mnt/nas/coffer" # required: a path or URL (docs/backends.md)
    password_file = "nas.pw"       # optional: else the usual password
    limit_upload = 0               # optional: KiB/s (0: unlimited)
    limit_download = 8192          # optional

A top-level ``repository`` with destinations is the first destination, named
``default``. ``-r NAME`` opens one destination by its name.

``coffer backup`` without ``-r``/``COFFER_REPO`` and with two destinations or
more backs up once, to the first destination that opens (so the source is
read once), then copies the run's new complete snapshots to each of the
others (store/copy.py). A destination that fails (it cannot be opened, or the
copy fails) is reported and the others go on; the exit code is then 3 (or the
backup's own code if that is worse). A destination that missed runs catches
up with ``coffer copy --from FIRST --to NAME``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from cli.config import Config
from cli.errors import CliError, ConfigError
from cli.targets import RepoTarget
from store import ExitCode, redact_text, redact_url

if TYPE_CHECKING:
    from cli.app import App
    from store import Repository, Snapshot

DESTINATION_KEYS = frozenset(
    {"name", "repository", "password_file", "limit_upload", "limit_download"}
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
F = TypeVar("F", bound=Callable[..., int])


@dataclass(frozen=True)
class Destination:
    """One ``[[destination]]`` of the configuration."""

    name: str
    target: RepoTarget


def _limit(table: dict[str, Any], key: str, where: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: '{key}' must be a number of KiB/s (0: unlimited)")
    return float(value)


def config_limits(config: Config) -> tuple[float | None, float | None]:
    """The top-level ``limit_upload`` and ``limit_download`` of the file."""
    where = str(config.path)
    return _limit(config.data, "limit_upload", where), _limit(config.data, "limit_download", where)


def parse_destinations(config: Config) -> list[Destination]:
    """The ``[[destination]]`` tables, checked. Raises ConfigError naming the problem."""
    tables = config.data.get("destination", [])
    where = str(config.path)
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{where}: 'destination' must be [[destination]] tables")
    if not tables:
        return []
    upload, download = config_limits(config)
    out: list[Destination] = []
    if config.repository:
        out.append(
            Destination("default", RepoTarget(config.repository, "default", None, upload, download))
        )
    for number, table in enumerate(tables, 1):
        here = f"{where}: [[destination]] #{number}"
        unknown = sorted(set(table) - DESTINATION_KEYS)
        if unknown:
            known = ", ".join(sorted(DESTINATION_KEYS))
            raise ConfigError(f"{here}: unknown key {unknown[0]!r} (known: {known})")
        name = table.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{here}: 'name' must be letters, digits, '.', '_' or '-'")
        here = f"{where}: destination '{name}'"
        if any(d.name == name for d in out):
            raise ConfigError(f"{here}: the name is used twice")
        repository = table.get("repository")
        if not isinstance(repository, str) or not repository:
            raise ConfigError(f"{here}: 'repository' (a path or URL) is required")
        password_file = table.get("password_file")
        if password_file is not None and not isinstance(password_file, str):
            raise ConfigError(f"{here}: 'password_file' must be a path")
        own_upload = _limit(table, "limit_upload", here)
        own_download = _limit(table, "limit_download", here)
        target = RepoTarget(
            config.resolve_repository(repository),
            name,
            config.resolve(password_file) if password_file else None,
            upload if own_upload is None else own_upload,
            download if own_download is None else own_download,
        )
        out.append(Destination(name, target))
    return out


# -- sending a backup to every destination ------------------------------------


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
    from cli.output import human_duration, human_size, note

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
    from cli.copying import run_copy

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
            import traceback

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
