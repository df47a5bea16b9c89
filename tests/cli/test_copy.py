"""``coffer copy`` end to end: local repositories, S3 (moto), SFTP (sshd), kill -9."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from pathlib import Path

import pytest

from store import LocalBackend, RepoConfig, Repository
from tests.cli.support.helpers import CofferEnv, files_of, init, make_tree, new_env, tree_state
from tests.store.support.helpers import FAST_KDF
from tests.store.support.servers import S3Server, SshServer, moto_server, sshd_server

__all__ = ["moto_server", "sshd_server"]


def two_repos(tmp_path: Path) -> tuple[CofferEnv, CofferEnv]:
    """A source with its own password, and a destination with another."""
    source = new_env(tmp_path / "a", password="source password\n")
    dest = new_env(tmp_path / "b", password="destination password\n")
    init(source)
    init(dest)
    return source, dest


def from_source(source: CofferEnv) -> dict[str, str]:
    return {
        "COFFER_FROM_REPO": str(source.repo),
        "COFFER_FROM_PASSWORD_FILE": str(source.password_file),
    }


def test_copy_between_local_repositories(tmp_path: Path) -> None:
    source, dest = two_repos(tmp_path)
    data = tmp_path / "data"
    other = tmp_path / "other"
    make_tree(data, big=1)
    make_tree(other, seed=2)
    source.run("backup", "--path", str(data), "--path", str(other))
    (data / "added.txt").write_text("second run\n")
    source.run("backup", "--path", str(data))

    result = dest.run("copy", "--json", **from_source(source))
    summary = result.json()
    assert len(summary["copied"]) == 3
    assert summary["failed"] == []
    assert summary["stats"]["bytes_read"] > 3 * 1024 * 1024
    assert summary["report"].startswith("reports/copy/")
    # The destination has its own keys: restore from it alone.
    for folder in (data, other):
        target = tmp_path / f"restored-{folder.name}"
        dest.run("restore", "latest", "--owner", f"*{folder}", "--to-dir", str(target))
        assert tree_state(target) == tree_state(folder)

    again = dest.run("copy", "--json", **from_source(source)).json()
    assert again["copied"] == []
    assert len(again["already_present"]) == 3
    assert again["stats"]["bytes_read"] == 0
    assert "report" not in again


def test_copy_selection_options_and_errors(tmp_path: Path) -> None:
    source, dest = two_repos(tmp_path)
    data = tmp_path / "data"
    make_tree(data, files=5)
    for _ in range(2):
        (data / "counter").write_text(str(time.time_ns()))
        source.run("backup", "--path", str(data))
    other = tmp_path / "other"
    make_tree(other, files=3, seed=3)
    source.run("backup", "--path", str(other))
    snapshots = source.run("snapshots", "--json").json()

    # By ID prefix, with --from and --from-password-file as options.
    first = snapshots[0]["id"]
    result = dest.run(
        "copy",
        first[:10],
        "--from",
        str(source.repo),
        "--from-password-file",
        str(source.password_file),
        "--json",
    ).json()
    assert [c["source_snapshot"] for c in result["copied"]] == [first]
    # latest of one owner.
    result = dest.run(
        "copy", "latest", "--owner", f"*{data}", "--json", **from_source(source)
    ).json()
    assert [c["source_snapshot"] for c in result["copied"]] == [snapshots[1]["id"]]
    copies = dest.run("snapshots", "--json").json()
    assert copies[1]["parent"] == copies[0]["id"]  # the history is kept

    missing = dest.run("copy", check=False)
    assert missing.code == 2
    assert "--from" in missing.err
    wrong = dest.run(
        "copy", check=False, COFFER_FROM_REPO=str(source.repo), COFFER_FROM_PASSWORD="wrong"
    )
    assert wrong.code == 11
    assert "source" in wrong.err
    assert "Traceback" not in wrong.err
    nowhere = dest.run(
        "copy", "--from", str(tmp_path / "nowhere"), check=False, **from_source(source)
    )
    assert nowhere.code == 10
    same = dest.run(
        "copy",
        check=False,
        COFFER_FROM_REPO=str(dest.repo),
        COFFER_FROM_PASSWORD_FILE=str(dest.password_file),
    )
    assert same.code == 2
    assert "same repository" in same.err
    unknown = dest.run("copy", "deadbeef", check=False, **from_source(source))
    assert unknown.code == 1
    assert "deadbeef" in unknown.err


def test_killed_copy_resumes_and_every_copy_restores_exactly(tmp_path: Path) -> None:
    source = new_env(tmp_path / "a", password="source password\n")
    init(source)
    folders = []
    rng = random.Random(5)
    for n in range(4):
        folder = tmp_path / f"owner-{n}"
        folder.mkdir()
        for i in range(3):
            (folder / f"file-{i}.bin").write_bytes(rng.randbytes(700_000))
        (folder / "small.txt").write_text(f"owner {n}\n")
        folders.append(folder)
        source.run("backup", "--path", str(folder))
    # A destination with small packs, so that a copy writes many of them.
    dest = new_env(tmp_path / "b", password="destination password\n")
    Repository.init(
        LocalBackend(dest.repo),
        b"destination password",
        kdf=FAST_KDF,
        config=RepoConfig.new(pack_size=512 * 1024),
        cache_root=tmp_path / "init-cache",
    ).close()

    # Slowed down to 1 MiB/s, the copy takes about eight seconds: kill it
    # (SIGKILL: no cleanup at all) once the second snapshot is in. The two
    # snapshots left then take seconds, so a test process the shared machine
    # leaves waiting a while still kills the copy before it ends.
    process = dest.popen("--limit-upload", "1024", "copy", **from_source(source))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((dest.repo / "snapshots").glob("*"))) >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()
    time.sleep(0.3)  # into the third snapshot's packs
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    done = len(list((dest.repo / "snapshots").glob("*")))
    assert 2 <= done < 4
    assert list((dest.repo / "sessions").glob("*")), "a killed copy leaves its session marker"

    result = dest.run("copy", "--json", **from_source(source)).json()
    assert len(result["already_present"]) == done
    assert len(result["copied"]) == 4 - done
    for folder in folders:
        target = tmp_path / f"restored-{folder.name}"
        dest.run("restore", "latest", "--owner", f"*{folder}", "--to-dir", str(target))
        assert files_of(target) == files_of(folder)
    assert dest.run("copy", "--json", **from_source(source)).json()["copied"] == []


@pytest.mark.server
def test_copy_to_s3_and_back(tmp_path: Path, moto_server: S3Server) -> None:
    aws = {
        "AWS_ACCESS_KEY_ID": "coffer-test",
        "AWS_SECRET_ACCESS_KEY": "coffer-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    source = new_env(tmp_path / "a", password="source password\n")
    init(source)
    data = tmp_path / "data"
    make_tree(data, big=1)
    source.run("backup", "--path", str(data))
    url = f"s3:{moto_server.endpoint}/coffer-{uuid.uuid4().hex[:12]}/copy"
    cloud = new_env(tmp_path / "s3", password="cloud password\n")
    cloud.run("init", "--kdf-memory", "8", "--kdf-iterations", "1", COFFER_REPO=url, **aws)
    result = cloud.run("copy", "--json", COFFER_REPO=url, **from_source(source), **aws).json()
    assert len(result["copied"]) == 1
    # The remote repository's metadata is cached locally for the next runs.
    cached = list((cloud.root / "cache" / "coffer" / "backends").glob("*/snapshots/*"))
    assert len(cached) == 1

    # And back, from S3 to a new local repository.
    back = new_env(tmp_path / "c", password="third password\n")
    init(back)
    result = back.run(
        "copy",
        "--json",
        COFFER_FROM_REPO=url,
        COFFER_FROM_PASSWORD_FILE=str(cloud.password_file),
        **aws,
    ).json()
    assert len(result["copied"]) == 1
    target = tmp_path / "restored"
    back.run("restore", "latest", "--to-dir", str(target))
    assert tree_state(target) == tree_state(data)


@pytest.mark.server
def test_copy_to_sftp(tmp_path: Path, sshd_server: SshServer) -> None:
    ssh = {
        "COFFER_SFTP_KEY": str(sshd_server.client_key),
        "COFFER_SFTP_KNOWN_HOSTS": str(sshd_server.known_hosts),
    }
    source = new_env(tmp_path / "a", password="source password\n")
    init(source)
    data = tmp_path / "data"
    make_tree(data, big=1)
    source.run("backup", "--path", str(data))
    url = f"sftp:{sshd_server.url_base}{sshd_server.root}/copy-{uuid.uuid4().hex[:12]}"
    remote = new_env(tmp_path / "sftp", password="remote password\n")
    remote.run("init", "--kdf-memory", "8", "--kdf-iterations", "1", COFFER_REPO=url, **ssh)
    result = remote.run("copy", "--json", COFFER_REPO=url, **from_source(source), **ssh).json()
    assert len(result["copied"]) == 1
    again = remote.run("copy", "--json", COFFER_REPO=url, **from_source(source), **ssh).json()
    assert again["copied"] == []
    target = tmp_path / "restored"
    remote.run("restore", "latest", "--to-dir", str(target), COFFER_REPO=url, **ssh)
    assert tree_state(target) == tree_state(data)
