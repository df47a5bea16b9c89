"""Several destinations in coffer.toml, and bandwidth limits measured through S3."""

from __future__ import annotations

import os
import random
import time
import uuid
from pathlib import Path

import pytest

from tests.cli.support.helpers import CofferEnv, files_of, make_tree, new_env, tree_state
from tests.cli.support.netmeter import MeterProxy
from tests.store.support.servers import S3Server, moto_server

__all__ = ["moto_server"]

KDF = ("--kdf-memory", "8", "--kdf-iterations", "1")
AWS = {
    "AWS_ACCESS_KEY_ID": "coffer-test",
    "AWS_SECRET_ACCESS_KEY": "coffer-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def configured(root: Path, toml: str) -> tuple[CofferEnv, dict[str, str]]:
    """An environment whose repositories come from a coffer.toml (no COFFER_REPO)."""
    env = new_env(root)
    config = root / "coffer.toml"
    config.write_text(toml)
    return env, {"COFFER_REPO": "", "COFFER_CONFIG": str(config)}


def test_every_run_reaches_every_destination_and_failures_are_reported(tmp_path: Path) -> None:
    env, extra = configured(
        tmp_path,
        """
[[destination]]
name = "usb"                      # not plugged in: not a repository
repository = "usb-disk/coffer"

[[destination]]
name = "nas"
repository = "nas"

[[destination]]
name = "offsite"
repository = "offsite"
password_file = "offsite.pw"

[[destination]]
name = "broken"
repository = "broken"
password_file = "wrong.pw"
""",
    )
    (tmp_path / "offsite.pw").write_text("offsite password\n")
    (tmp_path / "wrong.pw").write_text("not the password\n")
    (tmp_path / "broken.pw").write_text("the password\n")
    env.run("-r", "nas", "init", *KDF, **extra)  # the usual password
    env.run("-r", "offsite", "init", *KDF, **extra)  # its own password file
    # (--password-file goes before a destination's own file.)
    env.run("--password-file", str(tmp_path / "broken.pw"), "-r", "broken", "init", *KDF, **extra)
    data = tmp_path / "data"
    make_tree(data, big=1)

    run = env.run("backup", "--path", str(data), "--json", check=False, **extra)
    assert run.code == 3, run.err
    report = run.json()
    assert report["owners"][0]["snapshot"]  # the backup's own report is intact
    by_name = {d["name"]: d for d in report["destinations"]}
    assert [d["name"] for d in report["destinations"]] == ["usb", "nas", "offsite", "broken"]
    assert by_name["usb"]["status"] == "failed"
    assert by_name["usb"]["exit_code"] == 10
    assert (by_name["nas"]["role"], by_name["nas"]["status"]) == ("backup", "ok")
    assert by_name["nas"]["snapshots"] == 1
    assert (by_name["offsite"]["role"], by_name["offsite"]["status"]) == ("copy", "ok")
    assert by_name["offsite"]["copied"] == 1
    assert by_name["broken"]["status"] == "failed"
    assert by_name["broken"]["exit_code"] == 11
    assert "password" in by_name["broken"]["error"]

    (data / "nested" / "new.txt").write_text("second run\n")
    # --password-file is the usual password here: offsite keeps its own.
    second = env.run(
        "--password-file",
        str(env.password_file),
        "backup",
        "--path",
        str(data),
        check=False,
        **extra,
    )
    assert second.code == 3
    assert "destination offsite: copied 1 snapshots" in second.err
    assert "destination broken: failed" in second.err
    for name in ("nas", "offsite"):
        snapshots = env.run("-r", name, "snapshots", "--json", **extra).json()
        assert len(snapshots) == 2
        assert snapshots[1]["parent"] == snapshots[0]["id"]
        target = tmp_path / f"restored-{name}"
        env.run("-r", name, "restore", "latest", "--to-dir", str(target), **extra)
        assert tree_state(target) == tree_state(data)
    # The offsite copy is the same run as the backup it came from.
    runs = {
        name: env.run("-r", name, "snapshots", "--json", **extra).json()
        for name in ("nas", "offsite")
    }
    assert [s["run"] for s in runs["nas"]] == [s["run"] for s in runs["offsite"]]
    # Catching up by names: the source's password comes from the usual
    # variables (nas has no file of its own), the destination's from its file.
    catch_up = env.run("copy", "--from", "nas", "--to", "offsite", "--json", **extra).json()
    assert (len(catch_up["copied"]), len(catch_up["already_present"])) == (0, 2)
    # -r picks one destination: no fan-out.
    only = env.run("-r", "nas", "backup", "--path", str(data), "--json", **extra).json()
    assert "destinations" not in only


def test_all_good_destinations_exit_zero(tmp_path: Path) -> None:
    env, extra = configured(
        tmp_path,
        'repository = "main"\n[[destination]]\nname = "copy"\nrepository = "second"\n',
    )
    env.run("init", *KDF, **extra)  # the first destination: "default", the top-level one
    env.run("-r", "copy", "init", *KDF, **extra)
    data = tmp_path / "data"
    make_tree(data, files=5)
    report = env.run("backup", "--path", str(data), "--json", **extra).json()
    assert [(d["name"], d["status"]) for d in report["destinations"]] == [
        ("default", "ok"),
        ("copy", "ok"),
    ]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[destination]]\nname = "a"\nrepository = "x"\nlimit_uplaod = 5\n', "unknown key"),
        ('[[destination]]\nname = "a"\nrepository = "x"\n' * 2, "used twice"),
        ('[[destination]]\nname = "a b"\nrepository = "x"\n', "'name'"),
        ('[[destination]]\nname = "a"\n', "'repository'"),
        ('[[destination]]\nname = "a"\nrepository = "x"\nlimit_upload = -1\n', "KiB/s"),
        ('limit_download = "fast"\n', "KiB/s"),
    ],
)
def test_configuration_errors(tmp_path: Path, toml: str, message: str) -> None:
    env, extra = configured(tmp_path, toml)
    result = env.run("-r", str(tmp_path / "x"), "snapshots", check=False, **extra)
    assert result.code == 16
    assert message in result.err


# -- bandwidth limits, measured through a real S3 server ------------------------------------

LIMIT = 2048  # KiB/s
BURST = LIMIT * 1024 * 0.25  # the token bucket starts with a quarter second of credit


def assert_rate(moved: int, seconds: float, what: str) -> None:
    rate = (moved - BURST) / seconds / 1024
    print(f"{what}: limit {LIMIT} KiB/s, {moved} bytes in {seconds:.2f}s: {rate:.0f} KiB/s")
    assert rate <= LIMIT * 1.05, f"{what} went faster than the limit"
    # The work between the transfers is in the time too, so the measured
    # rate is below the limit by however busy the (shared) machine is: the
    # floor only catches a limit applied several times over.
    assert rate >= LIMIT * 0.3, f"{what} was far slower than the limit"


@pytest.mark.server
def test_bandwidth_limits_are_honoured(tmp_path: Path, moto_server: S3Server) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "random.bin").write_bytes(random.Random(1).randbytes(8 * 1024 * 1024))
    with MeterProxy(moto_server.port) as proxy:
        url = f"s3:http://127.0.0.1:{proxy.port}/coffer-{uuid.uuid4().hex[:12]}/limits"
        env = new_env(tmp_path / "env")
        extra = {"COFFER_REPO": url, **AWS}
        env.run("init", *KDF, **extra)

        proxy.reset()
        env.run("--limit-upload", str(LIMIT), "backup", "--path", str(data), **extra)
        traffic = proxy.reset()
        assert traffic.sent > 8 * 1024 * 1024
        # From the first request to the last byte sent: the process's start-up
        # is left out; the work between requests is in.
        assert_rate(traffic.sent, traffic.upload_window(), "backup upload")

        target = tmp_path / "restored"
        env.run(
            "--limit-download", str(LIMIT), "restore", "latest", "--to-dir", str(target), **extra
        )
        ended = time.monotonic()
        traffic = proxy.reset()
        assert traffic.received > 8 * 1024 * 1024
        # A download pays for its bytes after they arrived: the last wait
        # comes after the last byte, so measure up to the end of the process.
        assert traffic.first_received is not None
        assert_rate(traffic.received, ended - traffic.first_received, "restore download")
        assert files_of(target) == files_of(data)

        # Listing snapshots again reads the metadata from the local cache: a
        # cold cache fetches config, key slots and snapshots; a warm one only
        # lists. (The cache of the runs above is warm already, so start a new one.)
        cold_cache = {**extra, "XDG_CACHE_HOME": str(tmp_path / "cold-cache")}
        env.run("snapshots", **cold_cache)
        cold = proxy.reset().received
        env.run("snapshots", **cold_cache)
        warm = proxy.reset().received
        print(f"snapshots: {cold} bytes received with a cold cache, {warm} with a warm one")
        cached = [
            p for p in (tmp_path / "cold-cache").rglob("*") if p.is_file() and "backends" in p.parts
        ]
        bodies = sum(p.stat().st_size for p in cached)
        # The config and the snapshot objects are cached (key slots never are: they
        # can be rewritten, FORMAT.md §10), and a warm run does not fetch them again.
        assert any("snapshots" in p.parts for p in cached), cached
        assert bodies > 200
        assert warm <= cold - bodies


@pytest.mark.server
def test_destination_limit_from_the_configuration(tmp_path: Path, moto_server: S3Server) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "random.bin").write_bytes(random.Random(2).randbytes(8 * 1024 * 1024))
    with MeterProxy(moto_server.port) as proxy:
        url = f"s3:http://127.0.0.1:{proxy.port}/coffer-{uuid.uuid4().hex[:12]}/dest"
        env, extra = configured(
            tmp_path / "env",
            f"""
[[destination]]
name = "local"
repository = "local"

[[destination]]
name = "cloud"
repository = "{url}"
limit_upload = {LIMIT}
""",
        )
        extra.update(AWS)
        env.run("-r", "local", "init", *KDF, **extra)
        env.run("-r", "cloud", "init", *KDF, **extra)
        proxy.reset()
        report = env.run("backup", "--path", str(data), "--json", **extra).json()
        traffic = proxy.reset()
        cloud = report["destinations"][1]
        assert (cloud["name"], cloud["status"], cloud["copied"]) == ("cloud", "ok", 1)
        assert traffic.sent > 8 * 1024 * 1024
        assert_rate(traffic.sent, traffic.upload_window(), "copy to a destination")
        target = tmp_path / "restored"
        env.run("-r", "cloud", "restore", "latest", "--to-dir", str(target), **extra)
        assert files_of(target) == files_of(data)


@pytest.mark.slow
@pytest.mark.server
def test_an_unreachable_first_destination_is_skipped(tmp_path: Path) -> None:
    # Nothing listens on this port: every attempt is refused, and retried
    # with backoff (about half a minute) before the destination counts as failed.
    from tests.store.support.servers import free_port

    env, extra = configured(
        tmp_path,
        f"""
[[destination]]
name = "cloud"
repository = "s3:http://127.0.0.1:{free_port()}/bucket/coffer"

[[destination]]
name = "nas"
repository = "nas"
""",
    )
    extra.update(AWS)
    env.run("-r", "nas", "init", *KDF, **extra)
    data = tmp_path / "data"
    make_tree(data, files=5)
    result = env.run("backup", "--path", str(data), "--json", check=False, timeout=600, **extra)
    assert result.code == 3
    cloud, nas = result.json()["destinations"]
    assert (cloud["status"], cloud["exit_code"]) == ("failed", 15)
    assert (nas["role"], nas["status"]) == ("backup", "ok")
