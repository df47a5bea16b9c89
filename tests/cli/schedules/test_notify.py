"""Notifications against real servers on loopback: an SMTP server (aiosmtpd) with
STARTTLS, implicit TLS and sign-in, and HTTP webhook receivers that work, fail
before working, or are not there at all."""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from cli.schedules.config import EmailSettings, NotifySettings, Webhook
from cli.schedules.notify import Message, Notifier
from tests.cli.console.kit import free_port
from tools.graphsim.certs import ensure_certificates

from .kit import PASSWORD, Setup, make_setup, webhook_receiver

SMTP_PASSWORD = "smtp-secret-for-coffer"


@dataclass
class Mailbox:
    mails: list[EmailMessage] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append(mail)
        self.arrived.set()
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(
            success=data.login == b"coffer" and data.password == SMTP_PASSWORD.encode()
        )


@dataclass
class Smtp:
    port: int
    ca_file: Path
    box: Mailbox
    password_file: Path


@pytest.fixture(params=["starttls", "tls"])
def smtp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Smtp]:
    certs = ensure_certificates(tmp_path / "certs", "client")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    box = Mailbox()
    port = free_port()
    tls: dict[str, Any] = {"tls_context": context, "require_starttls": True, "auth_required": True}
    if request.param == "tls":
        # aiosmtpd offers AUTH only once it sees TLS, and it sees only STARTTLS:
        # with implicit TLS the socket is TLS from the first byte (the client
        # refuses it otherwise), so its check is lifted here.
        # (The client signs in all the same; the test checks the login arrived.)
        tls = {"ssl_context": context, "auth_require_tls": False}
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=box.authenticate,
        **tls,
    )
    controller.start()
    password_file = tmp_path / "smtp.pw"
    password_file.write_text(SMTP_PASSWORD + "\n")
    try:
        yield Smtp(port, certs.ca_file, box, password_file)
    finally:
        controller.stop()


def test_a_mail_arrives_over_tls_with_the_credentials_from_the_file(
    smtp: Smtp, request: pytest.FixtureRequest
) -> None:
    security = request.node.callspec.params["smtp"]
    settings = NotifySettings(
        email=EmailSettings(
            "127.0.0.1",
            smtp.port,
            security,
            "coffer@example.test",
            "coffer",
            smtp.password_file,
            10,
            smtp.ca_file,
        )
    )
    notifier = Notifier(settings)
    notifier.send(
        Message("coffer: backup nightly failed", "Outcome: failed", ("ops@example.test",))
    )
    assert notifier.flush(30)
    notifier.stop()
    assert notifier.failures == []
    [mail] = smtp.box.mails
    assert mail["To"] == "ops@example.test"
    assert mail["From"] == "coffer@example.test"
    assert mail["Subject"] == "coffer: backup nightly failed"
    assert mail.get_content().strip() == "Outcome: failed"
    assert smtp.box.logins == [(b"coffer", SMTP_PASSWORD.encode())]
    assert SMTP_PASSWORD not in mail.as_string()


def test_a_server_whose_certificate_is_not_trusted_gets_nothing(
    smtp: Smtp, request: pytest.FixtureRequest
) -> None:
    # Without ca_file the self-signed server is refused: no credentials are sent to it.
    settings = NotifySettings(
        email=EmailSettings(
            "127.0.0.1",
            smtp.port,
            request.node.callspec.params["smtp"],
            "coffer@example.test",
            "coffer",
            smtp.password_file,
            10,
        ),
        attempts=1,
    )
    notifier = Notifier(settings)
    notifier.send(Message("s", "t", ("ops@example.test",)))
    assert notifier.flush(30)
    assert notifier.failures == ["e-mail: s"]
    assert smtp.box.logins == []


def _hook_settings(url: str, attempts: int = 4) -> NotifySettings:
    return NotifySettings(
        webhooks={"chat": Webhook("chat", url)}, attempts=attempts, backoff_seconds=0.05
    )


def test_a_webhook_gets_a_text_payload_that_teams_and_slack_accept() -> None:
    with webhook_receiver() as receiver:
        notifier = Notifier(_hook_settings(receiver.url))
        notifier.send(
            Message("coffer: backup nightly partial", "Outcome: partial", webhooks=("chat",))
        )
        assert notifier.flush(30)
    assert receiver.bodies == [{"text": "coffer: backup nightly partial\n\nOutcome: partial"}]


def test_a_webhook_that_fails_twice_gets_the_message_on_the_third_attempt() -> None:
    with webhook_receiver(fail_first=2) as receiver:
        notifier = Notifier(_hook_settings(receiver.url))
        notifier.send(Message("subject", "text", webhooks=("chat",)))
        assert notifier.flush(30)
    assert len(receiver.requests) == 3
    assert len(receiver.bodies) == 1
    assert notifier.failures == []
    assert notifier.sent == ["webhook chat: subject"]


def test_a_webhook_that_stays_down_is_given_up_after_the_bounded_attempts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/secret-token-in-url"
    notifier = Notifier(_hook_settings(url, attempts=3))
    notifier.send(Message("subject", "text", webhooks=("chat",)))
    assert notifier.flush(30)
    assert notifier.failures == ["webhook chat: subject"]
    assert "secret-token-in-url" not in caplog.text  # the URL is a credential
    assert caplog.text.count("attempt") == 3


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return make_setup(tmp_path)


def test_schedule_run_notifies_the_webhook_and_a_down_one_does_not_fail_the_backup(
    setup: Setup,
) -> None:
    down = f"http://127.0.0.1:{free_port()}/down"
    with webhook_receiver(fail_first=1) as receiver:
        setup.write_config(
            f"""
[notify]
attempts = 2
backoff_seconds = 0.05

[[notify.webhook]]
name = "teams"
url = "{receiver.url}"

[[notify.webhook]]
name = "down"
url = "{down}"

[[schedule]]
name = "files"
cron = "0 2 * * *"
paths = ["{setup.data}"]
notify = {{ on = ["succeeded", "failed"], webhooks = ["down", "teams"] }}
"""
        )
        result = setup.cli("schedule", "run", "files", "--json")
    assert result.code == 0, result.err
    run = result.json()
    assert run["outcome"] == "succeeded"
    assert len(setup.snapshots()) == 1
    [body] = receiver.bodies
    text = body["text"]
    assert text.startswith("coffer: backup files succeeded")
    assert run["report"] in text
    assert run["run_id"] in text
    assert PASSWORD not in text
    assert "webhook down: attempt 2 failed" in result.err
    assert "/down" not in result.err
