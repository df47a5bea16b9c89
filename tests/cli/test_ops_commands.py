"""check, repair, forget, prune, key, stats, diff, report through the real ``coffer``
executable (exit codes and messages are part of the contract)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519

COFFER = str(Path(sys.executable).parent / "coffer")


class Env:
    """A repository, a cache and a password file for one test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = root / "repo"
        self.src = root / "src"
        self.src.mkdir()
        self.password = root / "password"
        self.password.write_text("correct horse\n")
        self.env = {
            **os.environ,
            "COFFER_PASSWORD_FILE": str(self.password),
            "COFFER_CACHE_DIR": str(root / "cache"),
            "COFFER_CONFIG": str(root / "coffer.toml"),
        }
        self.env.pop("COFFER_PASSWORD", None)
        (root / "coffer.toml").write_text("")

    def run(self, *args: str, password: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if password is not None:
            env["COFFER_PASSWORD_FILE"] = str(password)
        return subprocess.run(
            [COFFER, "-r", str(self.repo), *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str, password: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, password=password)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def init(self) -> None:
        self.ok("init", "--kdf-memory", "8", "--kdf-iterations", "1")

    def write(self, files: dict[str, bytes]) -> None:
        for name, content in files.items():
            path = self.src / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)

    def backup(self) -> dict[str, object]:
        out = json.loads(self.ok("backup", "--path", str(self.src), "--json").stdout)
        assert isinstance(out, dict)
        return out

    def snapshots(self) -> list[dict[str, object]]:
        data = json.loads(self.ok("snapshots", "--json").stdout)
        assert isinstance(data, list)
        return data


@pytest.fixture
def env(tmp_path: Path) -> Env:
    environment = Env(tmp_path)
    environment.init()
    return environment


def _secret(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    return path


def test_check_exit_codes_and_damage_report(env: Env) -> None:
    rng = random.Random(1)
    env.write({"mail/a.eml": rng.randbytes(5000), "b.txt": b"hello"})
    env.backup()
    assert "no errors were found" in env.ok("check").stderr
    assert "no errors were found" in env.ok("check", "--read-data").stderr
    pack = next((env.repo / "data").rglob("*"))
    while pack.is_dir():
        pack = next(pack.iterdir())
    data = bytearray(pack.read_bytes())
    data[20] ^= 0xFF
    pack.write_bytes(bytes(data))
    assert env.run("check").returncode == 0  # structure only: no data read
    damaged = env.run("check", "--read-data")
    assert damaged.returncode == 13
    assert pack.name in damaged.stderr
    assert "affects 1 snapshot(s) of folders/" in damaged.stderr
    as_json = env.run("check", "--subset", "100%", "--json")
    assert as_json.returncode == 13
    report = json.loads(as_json.stdout)
    assert report["damaged"] is True
    assert report["bad_packs"][0]["pack"] == pack.name
    assert report["affected_owners"] == [f"folders/{os.uname().nodename}:{env.src}"]
    listing = env.ok("report", "--kind", "check").stdout
    assert listing.count("DAMAGED") == 2
    shown = json.loads(env.ok("report", report["report"].rpartition("/")[2], "--json").stdout)
    assert shown["report"]["damaged"] is True
    # Repair, and the next backup stores the lost content again.
    env.ok("repair", "index")
    repaired = env.ok("repair", "snapshots")
    assert "lost 1 item(s)" in repaired.stderr
    assert env.run("check", "--read-data").returncode == 0
    env.backup()
    restored = env.root / "restored"
    env.ok("restore", "latest", "--to-dir", str(restored))
    assert sorted(p.name for p in restored.rglob("*") if p.is_file()) == ["a.eml", "b.txt"]


def test_check_usage_errors(env: Env) -> None:
    assert env.run("check", "--subset", "150%").returncode == 2
    assert env.run("check", "--resume").returncode == 1  # nothing to resume


def test_wrong_password_exit_code_and_slots(env: Env) -> None:
    wrong = _secret(env.root / "wrong", "not it")
    result = env.run("snapshots", password=wrong)
    assert result.returncode == 11
    slot = json.loads(env.ok("key", "list", "--json").stdout)[0]["slot_id"]
    assert slot[:8] in result.stderr
    assert "Traceback" not in result.stderr


def test_key_commands(env: Env) -> None:
    second = _secret(env.root / "second", "second password")
    env.ok("key", "add", "--new-password-file", str(second), "--label", "ops")
    slots = json.loads(env.ok("key", "list", "--json").stdout)
    assert len(slots) == 2
    current = next(s for s in slots if s["current"])
    other = next(s for s in slots if not s["current"])
    assert other["label"] == "ops"
    env.ok("snapshots", password=second)
    refused = env.run("key", "remove", current["slot_id"][:8])
    assert refused.returncode == 1
    assert "in use" in refused.stderr
    # Change the second password, rotate, then remove the first slot through the second.
    third = _secret(env.root / "third", "third password")
    env.ok("key", "passwd", "--new-password-file", str(third), password=second)
    assert env.run("snapshots", password=second).returncode == 11
    env.write({"x": b"before rotation"})
    env.backup()
    rotated = json.loads(env.ok("key", "rotate", "--json").stdout)
    assert rotated["epoch"] == 2  # passwd rotated to epoch 1 already
    assert len(rotated["rewrapped"]) == 2
    env.write({"x": b"after rotation"})
    env.backup()
    env.ok("key", "remove", current["slot_id"][:8], password=third)
    assert env.run("snapshots").returncode == 11
    last = env.run("key", "remove", other["slot_id"][:8], password=third)
    assert last.returncode == 1  # in use, and the last password anyway
    assert env.run("check", "--read-data", password=third).returncode == 0
    without_file = env.run("key", "add", password=third)
    assert without_file.returncode == 1
    assert "--new-password-file" in without_file.stderr


@pytest.mark.parametrize("algorithm", ["x25519", "rsa"])
def test_escrow_add_and_recover(env: Env, algorithm: str) -> None:
    private: x25519.X25519PrivateKey | rsa.RSAPrivateKey = (
        x25519.X25519PrivateKey.generate()
        if algorithm == "x25519"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    public = env.root / "admin.pub.pem"
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    secret = env.root / "admin.pem"
    secret.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"admin passphrase"),
        )
    )
    passphrase = _secret(env.root / "admin.pass", "admin passphrase")
    env.write({"a": b"data"})
    env.backup()
    before = [s["id"] for s in env.snapshots()]
    assert len(before) == 1
    added = env.ok("key", "escrow", "add", "--public-key", str(public))
    assert "escrow slot" in added.stderr
    # The password is lost; recovery needs no password, only the private key.
    env.password.write_text("forgotten\n")
    new = _secret(env.root / "new", "recovered password")
    env.ok(
        "key",
        "recover",
        "--private-key",
        str(secret),
        "--private-key-password-file",
        str(passphrase),
        "--new-password-file",
        str(new),
        "--kdf-memory",
        "8",
        "--kdf-iterations",
        "1",
    )
    assert env.run("snapshots").returncode == 11  # the old password is really gone
    recovered = json.loads(env.ok("snapshots", "--json", password=new).stdout)
    assert [s["id"] for s in recovered] == before
    restored = env.root / "restored"
    env.ok("restore", "latest", "--to-dir", str(restored), password=new)
    assert [p.read_bytes() for p in restored.rglob("a")] == [b"data"]
    stranger = env.root / "stranger.pem"
    stranger.write_bytes(
        x25519.X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    refused = env.run(
        "key", "recover", "--private-key", str(stranger), "--new-password-file", str(new)
    )
    assert refused.returncode == 11


def test_forget_dry_run_json_config_and_prune(env: Env) -> None:
    rng = random.Random(2)
    for day in range(4):
        env.write({"f": rng.randbytes(30000), f"only-{day}": rng.randbytes(100)})
        env.backup()
    assert len(env.snapshots()) == 4
    refused = env.run("forget")
    assert refused.returncode == 2
    assert "no policy" in refused.stderr
    assert env.run("forget", "--keep-deleted-within", "30d").returncode == 2
    dry = env.ok("forget", "--keep-last", "2", "--dry-run")
    assert dry.stderr.count("would remove") == 3  # two lines plus the summary
    assert "last snapshot" in dry.stderr
    assert len(env.snapshots()) == 4
    plan = json.loads(env.ok("forget", "--keep-last", "2", "--dry-run", "--json").stdout)
    decisions = plan["owners"][0]["snapshots"]
    assert [d["keep"] for d in decisions] == [True, True, False, False]
    # The same policy from the configuration file.
    (env.root / "coffer.toml").write_text("[retention]\nkeep-last = 2\n")
    removed = env.ok("forget")
    assert "removed 2 snapshot(s)" in removed.stderr
    assert len(env.snapshots()) == 2
    before = sum(p.stat().st_size for p in (env.repo / "data").rglob("*") if p.is_file())
    marked = json.loads(env.ok("prune", "--json", "--max-unused", "0%").stdout)
    assert marked["marked"]
    assert not marked["deleted"]
    swept = json.loads(env.ok("prune", "--json", "--grace", "0h").stdout)
    assert swept["deleted"]
    after = sum(p.stat().st_size for p in (env.repo / "data").rglob("*") if p.is_file())
    assert after < before
    assert env.run("check", "--read-data").returncode == 0
    assert "prune" in env.ok("report").stdout


def test_stats_diff_and_report(env: Env) -> None:
    env.write({"a": b"one", "keep": b"same"})
    first = env.backup()
    env.write({"a": b"two", "b": b"new"})
    second = env.backup()
    ids = [first["owners"][0]["snapshot"], second["owners"][0]["snapshot"]]  # type: ignore[index]
    diff = env.ok("diff", ids[0][:8], ids[1][:8])
    lines = set(diff.stdout.splitlines())
    assert "M    a" in lines
    assert "+    b" in lines
    assert not any(line.endswith("keep") for line in lines)
    stats = json.loads(env.ok("stats", "--json").stdout)
    assert stats["snapshots"] == 2
    assert stats["owners"][0]["snapshots"] == 2
    assert len(stats["runs"]) == 2
    assert "dedup ratio" in env.ok("stats").stdout
    listing = env.ok("report").stdout
    assert listing.count("backup") == 2
    run_id = str(second["run"])
    shown = json.loads(env.ok("report", run_id[:12], "--json").stdout)
    assert shown["report"]["run"] == run_id
    assert env.run("report", "no-such-report").returncode == 1


@pytest.mark.slow
def test_kill_9_during_prune_then_check(env: Env) -> None:
    """The real command killed at random moments (tests/store/test_prune_concurrent.py
    kills prune deterministically at every write instead, in the quick suite)."""
    rng = random.Random(3)
    for _ in range(12):
        env.write({f"f{i}": rng.randbytes(20000) for i in range(6)})
        env.backup()
    env.ok("forget", "--keep-last", "1")
    # How long this prune takes undisturbed here (on a copy, with a cache of its own):
    # an idle machine prunes this repository in a quarter of a second, so the kill
    # moments are fractions of that, not fixed times.
    copy = env.root / "timing-copy"
    shutil.copytree(env.repo, copy)
    started = time.monotonic()
    subprocess.run(
        [COFFER, "-r", str(copy), "prune", "--grace", "0h", "--max-unused", "0%"],
        env={**env.env, "XDG_CACHE_HOME": str(env.root / "timing-cache")},
        check=True,
        capture_output=True,
    )
    undisturbed = time.monotonic() - started
    delays = [undisturbed * f for f in (0.5, 0.3, 0.7, 0.4, 0.6)]
    killed = 0
    for delay in delays:
        proc = subprocess.Popen(
            [COFFER, "-r", str(env.repo), "prune", "--grace", "0h", "--max-unused", "0%"],
            env=env.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        check = env.run("check", "--read-data")
        assert check.returncode == 0, check.stderr
    env.ok("prune", "--grace", "0h")
    env.ok("prune", "--grace", "0h")
    assert env.run("check", "--read-data").returncode == 0
    restored = env.root / "restored"
    env.ok("restore", "latest", "--to-dir", str(restored))
    assert sorted(p.name for p in restored.rglob("f*")) == [f"f{i}" for i in range(6)]
    assert killed >= 1
