"""``[cluster]``, ``--broker`` and ``COFFER_BROKER``: what is accepted, what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.cluster.settings import cluster_settings
from cli.errors import ConfigError
from cli.settings.config import Config


def _config(tmp_path: Path, **cluster: object) -> Config:
    return Config(tmp_path / "coffer.toml", {"cluster": cluster} if cluster else {})


def test_no_broker_means_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COFFER_BROKER", raising=False)
    assert cluster_settings(_config(tmp_path)) is None


def test_option_beats_environment_beats_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, broker="redis://file.example:6379/1")
    monkeypatch.setenv("COFFER_BROKER", "redis://env.example:6380/2")
    assert cluster_settings(config, "rediss://opt.example/3").url == "rediss://opt.example:6379/3"  # type: ignore[union-attr]
    assert cluster_settings(config).url == "redis://env.example:6380/2"  # type: ignore[union-attr]
    monkeypatch.delenv("COFFER_BROKER")
    settings = cluster_settings(config)
    assert settings is not None
    assert settings.url == "redis://file.example:6379/1"
    assert not settings.tls


def test_password_comes_from_a_file_and_never_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COFFER_BROKER", raising=False)
    (tmp_path / "pw").write_text("sekrit-broker-pw\n")
    settings = cluster_settings(
        _config(tmp_path, broker="rediss://r.example:6380/0", password_file="pw")
    )
    assert settings is not None
    assert settings.password == b"sekrit-broker-pw"
    assert settings.tls
    assert "sekrit" not in repr(settings) + settings.label


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("http://r.example:6379/0", "redis://HOST"),
        ("redis://user:pw-in-url@r.example/0", "must not hold a user or password"),
        ("redis://:pw-in-url@r.example/0", "must not hold a user or password"),
        ("redis://r.example/zero", "database number"),
        ("redis://r.example/0?password=pw-in-url", "no query"),
        ("redis://r.example:99999/0", "not a URL"),
    ],
)
def test_bad_broker_urls_are_one_line_without_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, words: str
) -> None:
    monkeypatch.delenv("COFFER_BROKER", raising=False)
    with pytest.raises(ConfigError) as caught:
        cluster_settings(_config(tmp_path, broker=value))
    message = str(caught.value)
    assert words in message
    assert "pw-in-url" not in message
    assert "\n" not in message


def test_bad_numbers_and_missing_password_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COFFER_BROKER", raising=False)
    with pytest.raises(ConfigError, match="lease_seconds"):
        cluster_settings(_config(tmp_path, broker="redis://r/0", lease_seconds=-1))
    with pytest.raises(ConfigError, match="broker password"):
        cluster_settings(_config(tmp_path, broker="redis://r/0", password_file="missing"))


def test_stall_timeout_and_index_refresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COFFER_BROKER", raising=False)
    default = cluster_settings(_config(tmp_path, broker="redis://r/0"))
    assert default is not None
    assert default.stall_seconds == 900.0
    assert default.index_refresh_seconds == 2.0
    chosen = cluster_settings(
        _config(tmp_path, broker="redis://r/0", stall_timeout=30, index_refresh=0)
    )
    assert chosen is not None
    assert (chosen.stall_seconds, chosen.index_refresh_seconds) == (30.0, 0.0)  # 0: off
    with pytest.raises(ConfigError, match="stall_timeout"):
        cluster_settings(_config(tmp_path, broker="redis://r/0", stall_timeout=0))
    with pytest.raises(ConfigError, match="index_refresh"):
        cluster_settings(_config(tmp_path, broker="redis://r/0", index_refresh=-1))
    with pytest.raises(ConfigError, match="index_refresh"):
        cluster_settings(_config(tmp_path, broker="redis://r/0", index_refresh="often"))
