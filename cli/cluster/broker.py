"""Connections to the broker: a Redis client and the Celery application.

Both take the password from :class:`ClusterSettings` (a file), never from the
URL, so neither Celery's banner nor any log line can show it: Celery's
``broker_url`` stays password-free and the password travels in the transport
options, which Celery does not print.

Jobs are addressed by name (``coffer.backup_owner``, ``coffer.restore_owner``):
the command that enqueues them needs no task code, and a worker registers the
handlers it runs (worker.py).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery

from cli.cluster.settings import BrokerUnreachable, ClusterSettings

BACKUP_TASK = "coffer.backup_owner"
RESTORE_TASK = "coffer.restore_owner"


def _tls_options(settings: ClusterSettings) -> dict[str, Any]:
    if not settings.tls:
        return {}
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if settings.ca_file:
        options["ssl_ca_certs"] = str(settings.ca_file)
    return options


def redis_client(settings: ClusterSettings, *, timeout: float = 10.0) -> redis.Redis:
    """A Redis client of the broker (connections made on first use; thread-safe)."""
    password = settings.password.decode() if settings.password else None
    return redis.Redis.from_url(
        settings.url,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        decode_responses=True,
        **_tls_options(settings),
    )


def check_reachable(client: redis.Redis, settings: ClusterSettings) -> None:
    """Raises BrokerUnreachable (exit 15, one line) unless the broker answers."""
    try:
        client.ping()
    except redis.AuthenticationError:
        raise BrokerUnreachable(
            f"broker {settings.label} refused the password (check [cluster] password_file)"
        ) from None
    except redis.RedisError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BrokerUnreachable(f"broker {settings.label} unreachable: {reason}") from None


def celery_app(
    settings: ClusterSettings,
    handlers: dict[str, Callable[..., Any]] | None = None,
) -> Celery:
    """The Celery application of this broker, with the job handlers ``handlers``
    (task name -> function of the job's message) registered for a worker.

    Delivery: late acknowledgement (a job is acknowledged when it ends, so a
    worker that dies leaves it to be redelivered after the visibility timeout),
    one message prefetched per worker thread (no hoarding of owner jobs), and
    a job lost with its worker is requeued rather than failed.
    """
    app = Celery("coffer", set_as_current=False)
    password = settings.password.decode() if settings.password else None
    transport: dict[str, Any] = {
        "visibility_timeout": settings.visibility_seconds,
        # Priorities are not needed: owners are enqueued largest first, FIFO.
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
        "health_check_interval": 30,
    }
    app.conf.update(
        broker_url=settings.url,
        broker_password=password,  # kept out of the URL Celery prints
        broker_transport_options=transport,
        broker_use_ssl=_tls_options(settings) or None,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a broker restart is waited out
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_enable_remote_control=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        enable_utc=True,
    )
    for name, handler in (handlers or {}).items():
        app.task(name=name, bind=True, acks_late=True, ignore_result=True)(handler)
    return app
