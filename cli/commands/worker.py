"""``coffer worker``: run owner jobs of scale-out backups (docs/scale-out.md).

A long-running process that takes jobs from the broker (``--broker``, else
``COFFER_BROKER``, else ``[cluster] broker``) and backs up one owner per job
into the repository of this process's own configuration, with this process's
own tenant credentials and repository password (none travel through the
broker). SIGTERM finishes the running owners, then exits 0.
Exit codes: 0 stopped, 15 broker unreachable, 16 no broker or a bad configuration.
"""

from __future__ import annotations

import logging

import click

from cli.app import App
from cli.cluster import cluster_settings
from cli.errors import ConfigError


@click.command("worker")
@click.option("--broker", metavar="URL", help="The broker (else COFFER_BROKER, else [cluster]).")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=4,
    show_default=True,
    help="Owners this process backs up at once (threads).",
)
@click.option(
    "--queues",
    "queues",
    multiple=True,
    metavar="NAME",
    help="Take jobs from these queues (repeatable; default [cluster] queue, 'coffer').",
)
@click.pass_obj
def command(app: App, broker: str | None, concurrency: int, queues: tuple[str, ...]) -> int:
    """Run owner jobs of scale-out backups until stopped (SIGTERM: finish, then stop)."""
    settings = cluster_settings(app.config, broker)
    if settings is None:
        raise ConfigError("no broker: give --broker URL, set COFFER_BROKER or [cluster] broker")
    for name in queues:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"queue names are letters, digits, - and _ (not {name!r})")
    # Loaded only for this command: a one-process backup never imports Celery.
    from cli.cluster.worker import run_worker
    from cli.flows.m365 import quiet_http_logs

    quiet_http_logs()
    level = min(logging.getLogger().level, logging.INFO)
    return run_worker(app, settings, concurrency=concurrency, queues=queues, loglevel=level)
