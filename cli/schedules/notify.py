"""Notifications: e-mail (SMTP, STARTTLS or implicit TLS) and webhooks (a JSON
POST of ``{"text": ...}``, which Slack incoming webhooks and Microsoft Teams
incoming webhooks both accept).

A :class:`Notifier` sends from one worker thread fed by a queue: ``send``
returns at once, so a notification never blocks or fails a backup. Each
channel is tried ``attempts`` times with exponential backoff
(``backoff_seconds``, doubled each time); a channel that still fails is
logged by its name (a webhook URL is a credential and never logged) and
recorded in :attr:`Notifier.failures`. ``stop`` ends a retry in progress; messages
still queued then are dropped (logged). Messages hold outcomes, names, times
and report keys, never a password or a secret file's content.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import partial

import requests

from cli.schedules.config import EmailSettings, NotifySettings, Webhook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    email: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    # What the message is about, for the delivery record (empty for the summary).
    schedule: str = ""
    run_id: str = ""
    report: str = ""
    outcome: str = ""


@dataclass
class Delivery:
    """What happened to one message on one channel: every attempt's time and, for a
    failed one, the exception's class (never its text: a requests error holds the
    webhook URL, a credential)."""

    channel: str
    message: Message
    attempts: list[tuple[float, str | None]] = field(default_factory=list)

    @property
    def sent(self) -> bool:
        return bool(self.attempts) and self.attempts[-1][1] is None

    def to_record(self) -> dict[str, object]:
        """The record stored in the repository (cli/serve/notifylog.py)."""
        m = self.message
        return {
            "format": RECORD_FORMAT,
            "version": 1,
            "kind": "notify",
            "time": _iso(self.attempts[-1][0]) if self.attempts else "",
            "channel": self.channel,
            "outcome": "sent" if self.sent else "failed",
            "attempts": len(self.attempts),
            "retries": max(0, len(self.attempts) - 1),
            "tries": [{"time": _iso(t), "error": e} for t, e in self.attempts],
            "subject": m.subject,
            "schedule": m.schedule,
            "run": m.run_id,
            "report": m.report,
            "run_outcome": m.outcome,
        }


RECORD_FORMAT = "coffer-notification"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _read_secret(path: object) -> str:
    with open(str(path), encoding="utf-8") as handle:
        return handle.read(64 * 1024).strip()


def send_email(settings: EmailSettings, to: tuple[str, ...], subject: str, text: str) -> None:
    """Send one mail. Raises OSError/smtplib.SMTPException on failure."""
    mail = EmailMessage()
    mail["From"] = settings.sender
    mail["To"] = ", ".join(to)
    mail["Subject"] = subject
    mail.set_content(text)
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    smtp: smtplib.SMTP
    if settings.security == "tls":
        smtp = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    with smtp:
        if settings.security == "starttls":
            smtp.starttls(context=context)
        if settings.username and settings.password_file:
            smtp.login(settings.username, _read_secret(settings.password_file))
        smtp.send_message(mail)


def post_webhook(hook: Webhook, subject: str, text: str, timeout: float = 15.0) -> None:
    """POST ``{"text": ...}``. Raises OSError/requests.RequestException on failure
    (a status other than 2xx included)."""
    url = hook.url or _read_secret(hook.url_file)
    response = requests.post(url, json={"text": f"{subject}\n\n{text}"}, timeout=timeout)
    response.raise_for_status()


class Notifier:
    """The queue and its worker (module docstring). ``start``/``stop`` make it a
    background service of ``coffer serve``; ``send`` is thread-safe."""

    name = "notifications"

    def __init__(
        self, settings: NotifySettings, recorder: Callable[[Delivery], object] | None = None
    ) -> None:
        self.settings = settings
        self.failures: list[str] = []  # "channel: subject" of every message given up on
        self.sent: list[str] = []
        # Called (on the worker thread) with each channel's delivery once it is sent
        # or given up: coffer serve stores it in the repository. Its errors are
        # logged, never raised into the worker.
        self.recorder = recorder
        self._queue: queue.Queue[Message | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="coffer-notify", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def send(self, message: Message) -> None:
        """Queue ``message``; never blocks, never raises."""
        self.start()
        self._queue.put(message)

    def queued(self) -> int:
        """Messages not yet sent nor given up."""
        return int(self._queue.unfinished_tasks)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every queued message is sent or given up. True if done in time."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._queue.unfinished_tasks

    def _work(self) -> None:
        while True:
            message = self._queue.get()
            try:
                if message is None:
                    if self._queue.qsize():
                        log.warning("stopping: %d notification(s) not sent", self._queue.qsize())
                    return
                self._deliver(message)
            except Exception:  # a bug here must not end the worker
                log.exception("notification worker")
            finally:
                self._queue.task_done()

    def _deliver(self, message: Message) -> None:
        channels: list[tuple[str, Callable[[], None]]] = []
        if message.email and self.settings.email is not None:
            email = self.settings.email
            channels.append(
                ("e-mail", partial(send_email, email, message.email, message.subject, message.text))
            )
        for name in message.webhooks:
            hook = self.settings.webhooks.get(name)
            if hook is not None:
                channels.append(
                    (f"webhook {name}", partial(post_webhook, hook, message.subject, message.text))
                )
        for label, action in channels:
            delivery = Delivery(label, message)
            self._with_retries(delivery, action)
            if self.recorder is not None:
                try:
                    self.recorder(delivery)
                except Exception:  # a record lost must not stop the notifications
                    log.exception("%s: the delivery record could not be stored", label)

    def _with_retries(self, delivery: Delivery, action: Callable[[], None]) -> None:
        label, subject = delivery.channel, delivery.message.subject
        delay = self.settings.backoff_seconds
        for attempt in range(1, self.settings.attempts + 1):
            try:
                action()
            except (OSError, smtplib.SMTPException, requests.RequestException) as exc:
                # The exception's class only: a requests error's text holds the URL.
                delivery.attempts.append((time.time(), type(exc).__name__))
                log.warning("%s: attempt %d failed: %s", label, attempt, type(exc).__name__)
                if attempt == self.settings.attempts or self._stopping.wait(delay):
                    break
                delay *= 2
            else:
                delivery.attempts.append((time.time(), None))
                self.sent.append(f"{label}: {subject}")
                return
        log.error("%s: giving up on %r", label, subject)
        self.failures.append(f"{label}: {subject}")
