"""What the rclone daemon is given, and where an rclone URL's secrets may show.

A real ``rclone rcd`` is started; its environment is read back from
``/proc/<pid>/environ``. The redaction tests go through the real ``coffer``
command with a connection-string URL whose parameter is a password.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from store.backend import open_backend, redact_text, redact_url
from store.backend.rclone import RcloneBackend
from tests.cli.support.helpers import make_tree, new_env

SECRETS = {
    "COFFER_PASSWORD": "repository-password-secret",
    "COFFER_FROM_PASSWORD": "other-repository-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-key-value",
    "AZURE_STORAGE_KEY": "azure-account-key-value",
    "COFFER_SFTP_KEY_PASSPHRASE": "ssh-key-passphrase",
    "COFFER_CLIENT_SECRET": "graph-client-secret",
}


@pytest.fixture
def rclone_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "rclone.conf"
    config.write_text("[testlocal]\ntype = local\n")
    monkeypatch.setenv("RCLONE_CONFIG", str(config))
    return config


def _daemon_environment(backend: RcloneBackend) -> dict[str, str]:
    backend.put("config", b"x")  # starts the daemon
    pid = backend.daemon_pid
    assert pid is not None
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {name.decode(): value.decode() for name, _, value in pairs}


def test_the_daemon_gets_only_what_rclone_needs(
    tmp_path: Path, rclone_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RCLONE_TRANSFERS", "2")
    backend = open_backend(f"rclone:testlocal:{tmp_path}/repo")
    assert isinstance(backend.inner, RcloneBackend)  # type: ignore[attr-defined]
    try:
        env = _daemon_environment(backend.inner)  # type: ignore[attr-defined]
    finally:
        backend.close()
    assert env["RCLONE_CONFIG"] == str(rclone_config)
    assert env["RCLONE_TRANSFERS"] == "2"
    assert "PATH" in env
    leaked = {name for name, value in SECRETS.items() if value in "\0".join(env.values())}
    assert leaked == set()
    assert not set(SECRETS) & set(env)


def test_named_variables_are_passed_for_env_auth_remotes(
    tmp_path: Path, rclone_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COFFER_RCLONE_ENV", "AWS_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID")
    backend = RcloneBackend(f"testlocal:{tmp_path}/repo")
    try:
        env = _daemon_environment(backend)
    finally:
        backend.close()
    assert env["AWS_SECRET_ACCESS_KEY"] == SECRETS["AWS_SECRET_ACCESS_KEY"]
    assert "COFFER_PASSWORD" not in env


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rclone:remote,pass=hunter2:path", "rclone:remote,...:path"),
        (
            "rclone::s3,access_key_id=AK,secret_access_key='se:cr:et':bucket/x",
            "rclone::s3,...:bucket/x",
        ),
        ('rclone:remote,pass="a,b:c":p', "rclone:remote,...:p"),
        ("rclone:plain:path/x", "rclone:plain:path/x"),
        ("s3:https://user:hunter2@host:9000/b", "s3:https://user:***@host:9000/b"),
        ("/srv/coffer", "/srv/coffer"),
    ],
)
def test_urls_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_text(f"cannot open {url}: refused", url) == f"cannot open {shown}: refused"


def test_destination_results_and_errors_never_show_the_secret(
    tmp_path: Path, rclone_config: Path
) -> None:
    secret = "hunter2-in-a-connection-string"
    env = new_env(tmp_path / "env")
    (tmp_path / "env" / "coffer.toml").write_text(
        f"""
[[destination]]
name = "here"
repository = "{tmp_path / "env" / "repo"}"

[[destination]]
name = "cloud"
repository = "rclone:nosuchremote,pass={secret}:coffer"
"""
    )
    extra = {
        "COFFER_REPO": "",
        "COFFER_CONFIG": str(tmp_path / "env" / "coffer.toml"),
        "RCLONE_CONFIG": str(rclone_config),
    }
    env.run("init", "--kdf-memory", "8", "--kdf-iterations", "1", **extra)
    source = tmp_path / "source"
    make_tree(source, files=3)
    result = env.run("backup", "--path", str(source), "--json", check=False, **extra)
    assert secret not in result.out
    assert secret not in result.err
    cloud = next(d for d in json.loads(result.out)["destinations"] if d["name"] == "cloud")
    assert cloud["status"] == "failed"
    assert cloud["repository"] == "rclone:nosuchremote,...:coffer"
    copy = env.run(
        "copy",
        "--from",
        str(tmp_path / "env" / "repo"),
        "-r",
        f"rclone:nosuchremote,pass={secret}:coffer",
        check=False,
        **extra,
        COFFER_FROM_PASSWORD_FILE=str(env.password_file),
    )
    assert copy.code != 0
    assert secret not in copy.out + copy.err
