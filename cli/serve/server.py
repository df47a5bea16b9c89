"""Running the console: uvicorn on the configured address, optionally with TLS.

uvicorn handles SIGTERM and SIGINT gracefully: it stops accepting, lets
requests in flight finish (at most ``GRACE_SECONDS``), then runs the
application's shutdown, which stops the background services. A restore job
still running then (it got 5 s to end) is abandoned: the process exits at
once, as a kill -9 would end it, and the next start audits it as interrupted
(cli/serve/jobjournal.py).
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys

import uvicorn

from cli.serve.app import create_app
from cli.serve.console import Console
from cli.serve.jobs import RestoreJobs
from cli.serve.services import Services
from store import ExitCode

GRACE_SECONDS = 10


def serve(console: Console, services: Services | None = None, *, log_level: str = "info") -> None:
    """Serve until SIGTERM/SIGINT. Raises OSError when the address cannot be bound
    (uvicorn exits the process with status 1 in that case)."""
    settings = console.settings
    app = create_app(console, services)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_certificate) if settings.tls_certificate else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        log_level=log_level,
        timeout_graceful_shutdown=GRACE_SECONDS,
        server_header=False,
        proxy_headers=False,  # the client address is the peer's (rate limits, audit)
    )
    logging.getLogger("coffer.serve").info("coffer console on %s", settings.url)
    # uvicorn re-raises the signal that stopped it once shut down, with the handler
    # found at start-up: a no-op one makes SIGTERM a clean exit (status 0) after the
    # graceful shutdown, as service managers expect.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    # SIGUSR1 writes every thread's stack to standard error: what a hung console is doing.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        uvicorn.Server(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    jobs: RestoreJobs = app.state.jobs
    unfinished = jobs.unfinished()
    if unfinished:
        # A restore still at work would hold the exit (its writer threads are
        # joined at exit) until it ends: minutes. Leave now, as kill -9 would; the
        # restore is recorded as interrupted at the next start (its journal file),
        # and running it again resumes it without duplicates.
        logging.getLogger("coffer.serve").warning(
            "exiting with %d restore(s) interrupted: %s",
            len(unfinished),
            ", ".join(j.id for j in unfinished),
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(ExitCode.OK)
