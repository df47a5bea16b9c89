"""The ``[[schedule]]`` tables and the ``[notify]`` table of coffer.toml.

    [[schedule]]
    name = "nightly"
    cron = ["0 2 * * *"]              # one or more cron expressions ...
    timezone = "Europe/Berlin"        # ... read in this zone (default UTC)
    users = ["*"]                     # a tenant selection (coffer backup --user) ...
    services = ["mail", "onedrive"]   # ... and --service; or instead:
    paths = ["/srv/data"]             # local folders (coffer backup --path)
    grace_minutes = 120               # a run missed while down starts at start-up if this recent
    retention = true                  # after a successful run: coffer forget --owner for its owners
    prune = "0 4 * * 0"               # coffer prune on its own cron
    check_read_data = { cron = "0 5 1 * *", subset = "5%" }
    pre = { argv = ["/usr/local/bin/snapshot-db"], timeout = 300 }
    post = { argv = ["/usr/local/bin/ping"], timeout = 60 }
    env = ["HOME"]                    # variables hooks get besides COFFER_*
    notify = { on = ["failed", "partial"], email = ["ops@example.com"], webhooks = ["teams"] }

    [notify.email]
    host = "smtp.example.com"
    port = 587
    security = "starttls"             # or "tls" (implicit, port 465) or "none"
    from = "coffer@example.com"
    username = "coffer"               # optional, with password_file
    password_file = "smtp.pw"
    ca_file = "smtp-ca.pem"           # optional: trust this CA (a self-signed server)

    [[notify.webhook]]
    name = "teams"
    url_file = "teams.url"            # or url = "..."; the URL is a credential: never logged

    [notify.summary]
    cron = "0 8 * * *"
    timezone = "Europe/Berlin"
    stale_hours = 26
    email = ["ops@example.com"]
    webhooks = ["teams"]

Relative paths are relative to the configuration file. Everything malformed
raises ConfigError naming the schedule and key. Parsing reads no secret: the
SMTP password and webhook URL files are read when a notification is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from cli.errors import ConfigError
from cli.settings.config import Config
from sources.m365.services import SERVICES

OUTCOMES = ("succeeded", "partial", "failed", "skipped", "interrupted")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SUBSET = re.compile(r"^(\d{1,3}(\.\d+)?%|\d+/\d+)$")


@dataclass(frozen=True)
class Hook:
    """A pre or post command: an argv (no shell) and a timeout in seconds."""

    argv: tuple[str, ...]
    timeout: float = 300.0


@dataclass(frozen=True)
class Cron:
    """Cron expressions read in one time zone."""

    expressions: tuple[str, ...]
    timezone: ZoneInfo


@dataclass(frozen=True)
class NotifyRule:
    """Whom to tell about which outcomes of a schedule's runs."""

    on: tuple[str, ...] = ("failed", "partial", "interrupted")
    email: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Schedule:
    """One ``[[schedule]]`` table (module docstring)."""

    name: str
    cron: Cron
    users: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    paths: tuple[Path, ...] = ()
    grace_seconds: float = 3600.0
    retention: bool = False
    prune: Cron | None = None
    check_cron: Cron | None = None
    check_subset: str = "5%"
    pre: Hook | None = None
    post: Hook | None = None
    env: tuple[str, ...] = ()
    notify: NotifyRule = field(default_factory=NotifyRule)


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    security: str  # "starttls", "tls" or "none"
    sender: str
    username: str | None = None
    password_file: Path | None = None
    timeout: float = 30.0
    ca_file: Path | None = None  # trust this CA (a self-signed server)


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str | None = None
    url_file: Path | None = None


@dataclass(frozen=True)
class SummarySettings:
    cron: Cron
    stale_hours: float = 26.0
    email: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotifySettings:
    email: EmailSettings | None = None
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    summary: SummarySettings | None = None
    attempts: int = 5
    backoff_seconds: float = 2.0


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: '{key}' must be a string or a list of strings")
    return tuple(value)


def _unknown(where: str, table: dict[str, Any], known: set[str]) -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r}")


def _positive(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: '{key}' must be a positive number")
    return float(value)


def parse_cron(where: str, expressions: Any, timezone: Any = "UTC") -> Cron:
    """Cron expressions (five fields) in ``timezone``. Raises ConfigError."""
    exprs = _strings(where, "cron", expressions)
    for expr in exprs:
        if len(expr.split()) != 5 or not croniter.is_valid(expr):
            raise ConfigError(f"{where}: {expr!r} is not a cron expression (5 fields)")
    if not isinstance(timezone, str):
        raise ConfigError(f"{where}: 'timezone' must be a string such as 'Europe/Berlin'")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown time zone {timezone!r}") from None
    return Cron(exprs, zone)


def _hook(where: str, value: Any) -> Hook | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table {{ argv = [...], timeout = N }}")
    _unknown(where, value, {"argv", "timeout"})
    argv = value.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ConfigError(f"{where}: 'argv' must be a non-empty list of strings (no shell)")
    return Hook(tuple(argv), _positive(where, "timeout", value.get("timeout", 300)))


def _notify_rule(where: str, value: Any) -> NotifyRule:
    if value is None:
        return NotifyRule()
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: 'notify' must be a table")
    _unknown(where + " notify", value, {"on", "email", "webhooks"})
    on = _strings(where, "notify.on", value.get("on", ["failed", "partial", "interrupted"]))
    bad = [o for o in on if o not in OUTCOMES]
    if bad:
        raise ConfigError(f"{where}: notify.on: {bad[0]!r} is not one of {', '.join(OUTCOMES)}")
    return NotifyRule(
        on,
        _strings(where, "notify.email", value.get("email", [])),
        _strings(where, "notify.webhooks", value.get("webhooks", [])),
    )


_SCHEDULE_KEYS = {
    "name", "cron", "timezone", "users", "services", "paths", "grace_minutes", "retention",
    "prune", "check_read_data", "pre", "post", "env", "notify",
}  # fmt: skip


def _schedule(config: Config, index: int, table: Any) -> Schedule:
    if not isinstance(table, dict):
        raise ConfigError(f"[[schedule]] #{index + 1} must be a table")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"[[schedule]] #{index + 1}: 'name' must be letters, digits, '.', '_' or '-'"
        )
    where = f"[[schedule]] {name}"
    _unknown(where, table, _SCHEDULE_KEYS)
    if "cron" not in table:
        raise ConfigError(f"{where}: 'cron' is missing")
    zone = table.get("timezone", "UTC")
    cron = parse_cron(where, table["cron"], zone)
    paths = tuple(config.resolve(p) for p in _strings(where, "paths", table.get("paths", [])))
    users = _strings(where, "users", table.get("users", []))
    services = _strings(where, "services", table.get("services", []))
    bad = [s for s in services if s not in SERVICES]
    if bad:
        raise ConfigError(f"{where}: unknown service {bad[0]!r}")
    if paths and (users or services):
        raise ConfigError(f"{where}: give 'paths' or a tenant selection (users/services), not both")
    retention = table.get("retention", False)
    if not isinstance(retention, bool):
        raise ConfigError(f"{where}: 'retention' must be true or false")
    if retention and not config.section("retention"):
        raise ConfigError(f"{where}: 'retention = true' needs a [retention] table (the policy)")
    prune = parse_cron(where + " prune", table["prune"], zone) if "prune" in table else None
    check_cron, subset = None, "5%"
    check = table.get("check_read_data")
    if check is not None:
        if not isinstance(check, dict) or "cron" not in check:
            raise ConfigError(f"{where}: check_read_data must be {{ cron = ..., subset = '5%' }}")
        _unknown(where + " check_read_data", check, {"cron", "subset"})
        check_cron = parse_cron(where + " check_read_data", check["cron"], zone)
        subset = check.get("subset", "5%")
        if not isinstance(subset, str) or not _SUBSET.match(subset):
            raise ConfigError(f"{where}: check_read_data subset must be N% or n/t")
    env = _strings(where, "env", table.get("env", []))
    if any(v.startswith("COFFER_") for v in env):
        raise ConfigError(f"{where}: 'env' may not name COFFER_ variables (they hold secrets)")
    return Schedule(
        name=name,
        cron=cron,
        users=users,
        services=services,
        paths=paths,
        grace_seconds=_positive(where, "grace_minutes", table.get("grace_minutes", 60)) * 60,
        retention=retention,
        prune=prune,
        check_cron=check_cron,
        check_subset=subset,
        pre=_hook(where + " pre", table.get("pre")),
        post=_hook(where + " post", table.get("post")),
        env=env,
        notify=_notify_rule(where, table.get("notify")),
    )


def parse_schedules(config: Config) -> list[Schedule]:
    """Every ``[[schedule]]`` of ``config``, checked. Raises ConfigError."""
    tables = config.data.get("schedule", [])
    if not isinstance(tables, list):
        raise ConfigError("'schedule' must be an array of tables: write [[schedule]]")
    schedules = [_schedule(config, i, t) for i, t in enumerate(tables)]
    names = [s.name for s in schedules]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"[[schedule]] {name}: the name is used twice")
    notify = parse_notify(config)
    for schedule in schedules:
        for hook in schedule.notify.webhooks:
            if hook not in notify.webhooks:
                raise ConfigError(f"[[schedule]] {schedule.name}: no [[notify.webhook]] {hook!r}")
        if schedule.notify.email and notify.email is None:
            raise ConfigError(f"[[schedule]] {schedule.name}: e-mail needs a [notify.email] table")
    return schedules


def _email(config: Config, table: Any) -> EmailSettings | None:
    if table is None:
        return None
    where = "[notify.email]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    _unknown(
        where,
        table,
        {"host", "port", "security", "from", "username", "password_file", "timeout", "ca_file"},
    )
    host, sender = table.get("host"), table.get("from")
    if not isinstance(host, str) or not host or not isinstance(sender, str) or "@" not in sender:
        raise ConfigError(f"{where}: 'host' and 'from' (an address) are required")
    security = table.get("security", "starttls")
    if security not in ("starttls", "tls", "none"):
        raise ConfigError(f"{where}: 'security' must be starttls, tls or none")
    port = table.get("port", 465 if security == "tls" else 587)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"{where}: 'port' must be a port number")
    username = table.get("username")
    if username is not None and not isinstance(username, str):
        raise ConfigError(f"{where}: 'username' must be a string")
    pw = table.get("password_file")
    if (username is None) != (pw is None):
        raise ConfigError(f"{where}: 'username' and 'password_file' go together")
    if pw is not None and not isinstance(pw, str):
        raise ConfigError(f"{where}: 'password_file' must be a path")
    if username is not None and security == "none":
        raise ConfigError(f"{where}: a password is never sent without TLS: use starttls or tls")
    return EmailSettings(
        host,
        port,
        security,
        sender,
        username,
        config.resolve(pw) if pw else None,
        _positive(where, "timeout", table.get("timeout", 30)),
        config.resolve(table["ca_file"]) if isinstance(table.get("ca_file"), str) else None,
    )


def _webhooks(config: Config, value: Any) -> dict[str, Webhook]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise ConfigError("'notify.webhook' must be an array of tables: write [[notify.webhook]]")
    hooks: dict[str, Webhook] = {}
    for table in value:
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            raise ConfigError("[[notify.webhook]]: each needs a 'name'")
        where = f"[[notify.webhook]] {table['name']}"
        _unknown(where, table, {"name", "url", "url_file"})
        url, url_file = table.get("url"), table.get("url_file")
        if (url is None) == (url_file is None):
            raise ConfigError(f"{where}: give 'url' or 'url_file'")
        if url is not None and (not isinstance(url, str) or not url.startswith("http")):
            raise ConfigError(f"{where}: 'url' must be an http(s) URL")
        if url_file is not None and not isinstance(url_file, str):
            raise ConfigError(f"{where}: 'url_file' must be a path")
        hooks[table["name"]] = Webhook(
            table["name"], url, config.resolve(url_file) if url_file else None
        )
    return hooks


def parse_notify(config: Config) -> NotifySettings:
    """The ``[notify]`` table. Raises ConfigError."""
    table = config.section("notify")
    _unknown("[notify]", table, {"email", "webhook", "summary", "attempts", "backoff_seconds"})
    summary = None
    raw = table.get("summary")
    if raw is not None:
        if not isinstance(raw, dict) or "cron" not in raw:
            raise ConfigError("[notify.summary]: 'cron' is required")
        _unknown("[notify.summary]", raw, {"cron", "timezone", "stale_hours", "email", "webhooks"})
        summary = SummarySettings(
            parse_cron("[notify.summary]", raw["cron"], raw.get("timezone", "UTC")),
            _positive("[notify.summary]", "stale_hours", raw.get("stale_hours", 26)),
            _strings("[notify.summary]", "email", raw.get("email", [])),
            _strings("[notify.summary]", "webhooks", raw.get("webhooks", [])),
        )
    return NotifySettings(
        email=_email(config, table.get("email")),
        webhooks=_webhooks(config, table.get("webhook")),
        summary=summary,
        attempts=int(_positive("[notify]", "attempts", table.get("attempts", 5))),
        backoff_seconds=_positive("[notify]", "backoff_seconds", table.get("backoff_seconds", 2)),
    )
