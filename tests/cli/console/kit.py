"""What the console's tests share: a real repository with a folder backup holding
mails (one hostile), users in a real users file, and the real application."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path

from cli.app import App
from cli.commands.restore import command as restore_command
from cli.serve import Console, ServedRepo, UserFile, serve_settings
from tests.cli.support.helpers import CofferEnv, init, new_env

PASSWORDS = {"ann": "ann-admin-pass", "rob": "rob-restorer-pass", "val": "val-viewer-pass"}
ROLES = {"ann": "admin", "rob": "restorer", "val": "viewer"}
EVIL_HOST = "tracker.invalid"
EVIL_SUBJECT = "Quarterly figures"


def evil_mail() -> bytes:
    """A mail whose HTML tries every way of running script or loading remote content."""
    msg = EmailMessage()
    msg["From"] = "Mallory <mallory@example.com>"
    msg["To"] = "ann@example.com"
    msg["Subject"] = EVIL_SUBJECT
    msg["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    msg.set_content("plain version")
    msg.add_alternative(
        f"""<html><head><script>window.parent.__pwned = 1; document.title = 'pwned';</script>
<style>body {{ background: url(http://{EVIL_HOST}/css.png) }}</style>
<link rel="stylesheet" href="http://{EVIL_HOST}/style.css"></head>
<body onload="window.__pwned = 2">
<h1 id="greeting">Hello from the figures</h1>
<img src="http://{EVIL_HOST}/pixel.gif" alt="tracker">
<img src="x" onerror="window.__pwned = 3">
<a href="javascript:window.__pwned = 4">click</a>
<iframe src="http://{EVIL_HOST}/frame"></iframe>
<svg><script>window.__pwned = 5</script></svg>
<p style="background-image: url(http://{EVIL_HOST}/bg.png)">styled</p>
</body></html>""",
        subtype="html",
    )
    return bytes(msg)


def plain_mail(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Bob <bob@example.com>"
    msg["To"] = "ann@example.com"
    msg["Subject"] = subject
    msg.set_content(f"Body of {subject}\n")
    return bytes(msg)


@dataclass
class Setup:
    env: CofferEnv
    config: Path
    source: Path

    def app(self) -> App:
        return App(
            repo_option=str(self.env.repo),
            config_option=self.config,
            password_file_option=self.env.password_file,
            cache_dir_option=self.env.root / "cache",
            quiet=True,
        )

    def console(self, **overrides: object) -> Console:
        app = self.app()
        settings = serve_settings(app.config)
        if overrides:
            settings = replace(settings, **overrides)  # type: ignore[arg-type]
        return Console(settings, [ServedRepo("main", app.open_repo())], app, restore_command)

    @contextmanager
    def serving(self, **overrides: object) -> Iterator[Console]:
        """A console of its own (fresh sign-in limits), its repository closed after."""
        console = self.console(**overrides)
        try:
            yield console
        finally:
            for served in console.repos:
                served.repo.close()


def make_setup(root: Path, *, listen: str = "127.0.0.1:8765") -> Setup:
    """A repository with one folder backup (mails and a text file), a configuration
    with a [serve] table, three users and a metrics token."""
    env = new_env(root / "coffer")
    init(env)
    source = root / "mailbox"
    (source / "Inbox").mkdir(parents=True)
    (source / "Inbox" / "evil.eml").write_bytes(evil_mail())
    (source / "Inbox" / "hello.eml").write_bytes(plain_mail("Hello there"))
    (source / "notes.txt").write_text("some notes\n")
    env.run("backup", "--path", str(source))
    (root / "metrics.token").write_text("metrics-secret-token\n")
    config = root / "coffer.toml"
    config.write_text(
        f'repository = "{env.repo}"\n'
        "[serve]\n"
        f'listen = "{listen}"\n'
        'users_file = "users.json"\n'
        'metrics_token_file = "metrics.token"\n'
        "login_attempts = 3\n"
        "lockout_seconds = 60\n"
    )
    # (The CLI's user commands have their own test; this is the same code, faster.)
    users = UserFile(root / "users.json")
    for name, password in PASSWORDS.items():
        users.add(name, ROLES[name], password)
    return Setup(env, config, source)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
