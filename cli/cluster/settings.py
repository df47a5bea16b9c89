"""Where the broker is, and how long leases and deliveries last (``[cluster]``).

The broker comes from the first that is set: ``--broker URL``, ``COFFER_BROKER``,
``broker`` in the configuration's ``[cluster]`` table. Without one, Coffer runs
in one process and this package's Celery and Redis modules are never imported.

The Redis password never appears in the URL a user writes (URLs end up in
``ps``, shell history and logs): it comes from ``password_file`` in
``[cluster]`` or ``COFFER_BROKER_PASSWORD_FILE``. A password inside the URL is
refused with a one-line error. ``rediss://`` (TLS) is accepted; its CA comes
from ``ca_file`` when the server's certificate is not in the system store.

This module imports no Celery and no Redis: the command line reads it on
every ``coffer backup`` to decide whether to load them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cli.errors import CliError, ConfigError
from cli.settings.config import Config
from store import ExitCode

SCHEMES = ("redis", "rediss")
DEFAULT_QUEUE = "coffer"
# A job whose worker vanished comes back after this long (Celery's Redis
# transport requeues unacknowledged messages older than it). An owner that runs
# longer than this is delivered twice: the owner lease (lease.py) makes the
# second delivery wait, and then find the owner done (jobs.py).
DEFAULT_VISIBILITY_SECONDS = 3600.0
# An owner lease outlives its holder by at most this long (renewed at a third).
DEFAULT_LEASE_SECONDS = 60.0
# Run counters in Redis expire this long after their last update.
DEFAULT_RESULT_SECONDS = 7 * 24 * 3600.0
# SharePoint and OneDrive resource units per minute for the app in this tenant:
# 1,200 up to 1,000 licences, 2,400 to 5,000, 3,600 to 15,000, 4,800 to 50,000,
# 6,000 beyond ("Avoid getting throttled or blocked in SharePoint Online").
DEFAULT_SHAREPOINT_UNITS = 1200.0
# A followed run with owners left, no progress and no live worker this long
# fails with RunStalled (exit 19) instead of waiting forever.
DEFAULT_STALL_SECONDS = 900.0
# While jobs run, a worker merges the index objects other workers wrote this
# often (cli/cluster/indexsync.py); 0 turns it off (each job then knows only
# what was committed before it began). Measured: every 2 s saved most of what
# workers on separate machines stored twice, every 10 s nothing, on owners of a
# few seconds (docs/scale-out.md).
DEFAULT_INDEX_REFRESH_SECONDS = 2.0


_MAX_SECRET = 64 * 1024


def read_secret_file(path: Path, what: str) -> bytes:
    """The secret in ``path`` (a trailing newline stripped). Raises ConfigError."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_SECRET + 1)  # bounded: /dev/zero is refused
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None
    secret = raw.removesuffix(b"\n").removesuffix(b"\r")
    if len(raw) > _MAX_SECRET or not secret:
        raise ConfigError(f"the {what} file {path} is empty or larger than 64 KiB")
    return secret


class BrokerUnreachable(CliError):
    """The broker does not answer: exit 15, like an unreachable backend."""

    exit_code = ExitCode.BACKEND_UNREACHABLE


class RunStalled(CliError):
    """A followed run made no progress for ``stall_timeout`` with owners left and
    no worker alive: exit 19 (the jobs stay queued for workers that start later)."""

    exit_code = ExitCode.STALLED


class RunLost(CliError):
    """The broker holds no state of a detached run with owners left (Redis lost
    it, or its keys expired): nothing will finish it until ``coffer backup
    --resume RUN`` enqueues those owners again. Exit 19, like a stalled run."""

    exit_code = ExitCode.STALLED


class JobsLost(CliError):
    """The broker holds a detached run but the jobs of some owners left are
    nowhere: not done, in no worker's hands, not queued (the queue was lost, or
    Celery dropped them at a broker restart). Nothing will run them until
    ``coffer backup --resume RUN`` enqueues them again. Exit 19, like a run
    whose state the broker lost."""

    exit_code = ExitCode.STALLED


class RunNotLost(CliError):
    """``coffer backup --resume`` of a run the broker still holds (going, or
    resumed by another process first): nothing is enqueued. Exit 3, like
    ``coffer report`` of a run not finished yet."""

    exit_code = ExitCode.PARTIAL


@dataclass(frozen=True)
class ClusterSettings:
    """A configured broker. ``password`` is secret: never printed (see ``__repr__``)."""

    url: str
    password: bytes | None = None
    ca_file: Path | None = None
    queue: str = DEFAULT_QUEUE
    visibility_seconds: float = DEFAULT_VISIBILITY_SECONDS
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    result_seconds: float = DEFAULT_RESULT_SECONDS
    sharepoint_units: float = DEFAULT_SHAREPOINT_UNITS
    stall_seconds: float = DEFAULT_STALL_SECONDS
    index_refresh_seconds: float = DEFAULT_INDEX_REFRESH_SECONDS

    def __repr__(self) -> str:
        return f"ClusterSettings(url={self.url!r}, password={'***' if self.password else None})"

    @property
    def tls(self) -> bool:
        return self.url.startswith("rediss://")

    @property
    def label(self) -> str:
        """How messages name the broker (host, port and database; no secret)."""
        return self.url


def _number(table: dict[str, object], name: str, default: float, where: str) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: [cluster] {name} must be a positive number")
    return float(value)


def _period(table: dict[str, object], name: str, default: float, where: str) -> float:
    """A number of seconds, 0 for off."""
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: [cluster] {name} must be 0 (off) or a positive number")
    return float(value)


def check_url(url: str, where: str) -> str:
    """``url`` if it is a usable broker URL; raises ConfigError (one line) otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: broker is not a URL (redis://HOST:6379/0)") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ConfigError(f"{where}: broker must be redis://HOST:PORT/DB or rediss://HOST:PORT/DB")
    if parts.password is not None or parts.username is not None:
        # Never echo the URL here: it holds the secret.
        raise ConfigError(
            f"{where}: the broker URL must not hold a user or password; "
            "put the password in a file named by [cluster] password_file"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}: the broker URL takes no query or fragment")
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise ConfigError(f"{where}: the broker URL's path must be a database number")
    return f"{parts.scheme}://{parts.hostname}:{port or 6379}/{int(db)}"


def cluster_settings(config: Config, option: str | None = None) -> ClusterSettings | None:
    """The broker of this invocation, or None for one process. Raises ConfigError."""
    table = config.section("cluster")
    where = str(config.path) if config.path else "configuration"
    raw = option or os.environ.get("COFFER_BROKER") or table.get("broker")
    if not raw:
        return None
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: [cluster] broker must be a string")
    origin = "--broker" if option else "COFFER_BROKER" if os.environ.get("COFFER_BROKER") else where
    url = check_url(raw, origin)
    password: bytes | None = None
    password_file = os.environ.get("COFFER_BROKER_PASSWORD_FILE") or table.get("password_file")
    if password_file:
        if not isinstance(password_file, str):
            raise ConfigError(f"{where}: [cluster] password_file must be a string")
        password = read_secret_file(config.resolve(password_file), "broker password")
    ca_file = table.get("ca_file")
    if ca_file is not None and not isinstance(ca_file, str):
        raise ConfigError(f"{where}: [cluster] ca_file must be a string")
    queue = table.get("queue", DEFAULT_QUEUE)
    if not isinstance(queue, str) or not queue.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{where}: [cluster] queue must be a name of letters, digits, - and _")
    return ClusterSettings(
        url,
        password,
        config.resolve(ca_file) if ca_file else None,
        queue,
        _number(table, "visibility_timeout", DEFAULT_VISIBILITY_SECONDS, where),
        _number(table, "lease_seconds", DEFAULT_LEASE_SECONDS, where),
        _number(table, "result_expiry", DEFAULT_RESULT_SECONDS, where),
        _number(table, "sharepoint_units_per_minute", DEFAULT_SHAREPOINT_UNITS, where),
        _number(table, "stall_timeout", DEFAULT_STALL_SECONDS, where),
        _period(table, "index_refresh", DEFAULT_INDEX_REFRESH_SECONDS, where),
    )
