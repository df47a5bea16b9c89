"""Write a golden repository: what this release of Coffer writes, for every later one to read.

    .venv/bin/python -m tests.data.make_golden tests/data/golden-v<N>

Run it once per repository format version (store/FORMAT.md, "Upgrades and
compatibility"), with the release that introduces that version, and commit the
directory it writes. A golden directory is never regenerated: its bytes are
the test. ``tests/test_golden.py`` opens every ``golden-v*`` directory with the
current code, lists it, restores it, mounts it and checks it, and compares
with ``expected.json`` written here.

What it holds (every object kind of FORMAT.md §1):

- three local folders (text, binary of several chunks, nested, empty, a
  symlink, a 0600 file, fixed mtimes), backed up in three runs, so snapshots
  have parents and unchanged trees are shared;
- one backup of a tiny simulated Microsoft 365 tenant (tools/graphsim: users,
  a site and a team, every service);
- a checkpoint (a partial snapshot of an interrupted run);
- an escrow key slot (its private key is ``escrow-private.pem``, for tests);
- a forgotten snapshot (``coffer forget``, journalled in a forget report);
- a marked pack (``coffer prune`` condemned the forgotten snapshot's pack;
  the 24 h grace period keeps it until a later prune sweeps it).

The password is ``password``; the key derivation is cheap (8 KiB, 1 pass) so
tests open it fast. Everything is written through the ``coffer`` command
except the checkpoint, which needs a run that stops half-way (the store API).
``expected.json`` holds the snapshot list, each snapshot's ``ls`` and the
SHA-256 of every file a restore writes; for local folders those hashes are
checked here against the source files before anything is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from store import BackupRun, LocalBackend, Owner, Repository
from tools.graphsim.config import SCALES, ScaleProfile
from tools.graphsim.generator import drives
from tools.graphsim.testing import running_tenant

COFFER = str(Path(sys.executable).with_name("coffer"))
PASSWORD = "golden password\n"
# 2026-01-05 00:00:00 UTC and later, one hour apart: fixed file mtimes.
MTIME = 1_767_571_200 * 10**9
# A tenant small enough to commit: every service, a site and a team, and no
# multi-megabyte files or attachments.
TINY = ScaleProfile(
    users=2,
    folders_per_user=2,
    messages_per_user=5,
    contacts_per_user=2,
    events_per_user=2,
    files_per_user=3,
    big_files=(),
    big_attachment=40_000,
    sites=1,
    files_per_site=2,
    list_items_per_site=2,
    teams=1,
    channels_per_team=1,
    posts_per_channel=2,
    max_file=30_000,
    max_attachment=20_000,
)
CHECKPOINT_OWNER = Owner("folders", "golden:/checkpoint", "golden:/checkpoint")


def coffer(env: dict[str, str], *args: str) -> str:
    """Run ``coffer``; raise with its error output when it fails."""
    proc = subprocess.run(
        [COFFER, *args], env=env, capture_output=True, text=True, check=False, timeout=600
    )
    if proc.returncode != 0:
        raise SystemExit(f"coffer {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def write_file(path: Path, content: bytes, hour: int, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode)
    os.utime(path, ns=(MTIME + hour * 3600 * 10**9,) * 2)


def make_folders(root: Path) -> tuple[Path, Path, Path]:
    """The three folders of the first run, contents fixed by seeds."""
    rng = random.Random(20260105)
    docs, media, scratch = root / "docs", root / "media", root / "scratch"
    for i in range(6):
        text = f"golden line {i}\n".encode() * (10 + 40 * i)
        write_file(docs / ("notes" if i % 2 else "") / f"note-{i}.txt", text, i)
    write_file(docs / "empty.txt", b"", 7)
    write_file(docs / "private" / "secret.txt", b"mode 0600\n", 8, 0o600)
    write_file(docs / "ünïcödé.txt", b"unicode name\n", 9)
    (docs / "empty-folder").mkdir()
    (docs / "link").symlink_to("note-0.txt")
    # Several chunks (min 128 KiB, mean about 512 KiB) and a compressible half.
    write_file(media / "random.bin", rng.randbytes(700_000), 10)
    write_file(media / "half.bin", rng.randbytes(60_000) + b"\0" * 60_000, 11)
    write_file(scratch / "kept.txt", b"kept across runs\n", 12)
    write_file(scratch / "only-in-run-2.bin", rng.randbytes(150_000), 13)
    for folder in (docs, media, scratch, docs / "notes", docs / "private", docs / "empty-folder"):
        os.utime(folder, ns=(MTIME,) * 2)
    return docs, media, scratch


def file_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every regular file below ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def tiny_tenant_backup(env: dict[str, str], work: Path) -> None:
    """Two users (of the tenant's five), every site and team, every service."""
    SCALES["golden"] = TINY
    # Without the 4 MiB + 1 edge file every drive holds, the repository is a
    # few hundred KiB instead of tens of MiB (chunking of big files is covered
    # by the local folders).
    drives.EDGE_SIZES = (1, 327_680)
    with running_tenant(work / "sim", seed=11, scale="golden", throttling=False):
        config = work / "sim" / "coffer.toml"
        text = config.read_text()
        if "[tenant]\n" not in text:
            raise SystemExit(f"{config} has no [tenant] table")
        skip = '["boardroom@*", "info@*", "contractor@*"]'
        config.write_text(text.replace("[tenant]\n", f"[tenant]\nexclude_users = {skip}\n", 1))
        coffer({**env, "COFFER_CONFIG": str(config)}, "backup")


def leave_checkpoint(repo_dir: Path, cache: Path) -> None:
    """A run that commits a checkpoint and stops before completing the owner."""
    backend = LocalBackend(repo_dir)
    password = PASSWORD.strip().encode()
    with (
        Repository.open(backend, password, cache_root=cache) as repo,
        BackupRun(repo) as run,
        run.owner(CHECKPOINT_OWNER) as session,
    ):
        session.add_item("half-done.txt", b"written before the interruption\n", mtime_ns=MTIME)
        session.checkpoint()
        session.close()


def escrow(env: dict[str, str], out: Path) -> None:
    private = x25519.X25519PrivateKey.generate()
    (out / "escrow-private.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = out.parent / f".{out.name}-escrow.pub.pem"
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    coffer(env, "key", "escrow", "add", "--public-key", str(public), "--label", "golden escrow")
    public.unlink()


def expected_listing(env: dict[str, str], work: Path) -> dict[str, Any]:
    """Snapshots, each one's ``ls -R --json``, and the hashes its restore writes.

    Run on a copy of the repository: restores write reports.
    """
    snapshots = json.loads(coffer(env, "snapshots", "--partial", "--json"))
    out: dict[str, Any] = {"snapshots": [], "ls": {}, "files": {}}
    for snap in snapshots:
        out["snapshots"].append({k: snap[k] for k in SNAPSHOT_FIELDS})
        out["ls"][snap["id"]] = json.loads(coffer(env, "ls", snap["id"], "-R", "--json"))
        target = work / "restored" / snap["id"]
        coffer(env, "restore", snap["id"], "--to-dir", str(target))
        out["files"][snap["id"]] = file_hashes(target)
    return out


SNAPSHOT_FIELDS = ("id", "owner", "owner_kind", "owner_key", "run", "partial", "time_ns", "parent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out", type=Path, help="the new golden directory, e.g. tests/data/golden-v2"
    )
    args = parser.parse_args()
    out: Path = args.out.resolve()
    if out.exists():
        raise SystemExit(f"{out} exists: golden repositories are never regenerated")
    out.mkdir(parents=True)
    (out / "password").write_text(PASSWORD)
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
        env.update(
            COFFER_REPO=str(out / "repo"),
            COFFER_PASSWORD_FILE=str(out / "password"),
            XDG_CACHE_HOME=str(work / "cache"),
            XDG_CONFIG_HOME=str(work / "config"),
        )
        coffer(env, "init", "--kdf-memory", "8", "--kdf-iterations", "1")
        docs, media, scratch = make_folders(work / "src")
        sources = {str(p): file_hashes(p) for p in (docs, media, scratch)}
        coffer(env, "backup", "--path", str(docs), "--path", str(media))
        run2 = json.loads(coffer(env, "backup", "--path", str(scratch), "--json"))
        (scratch / "only-in-run-2.bin").unlink()
        write_file(docs / "note-0.txt", b"changed in run 3\n", 20)
        write_file(docs / "added.txt", b"added in run 3\n", 21)
        os.utime(docs, ns=(MTIME,) * 2)
        sources_run3 = {str(p): file_hashes(p) for p in (docs, scratch)}
        coffer(env, "backup", "--path", str(docs), "--path", str(scratch))
        tiny_tenant_backup(env, work)
        leave_checkpoint(out / "repo", work / "cache" / "coffer")
        escrow(env, out)
        coffer(env, "forget", run2["owners"][0]["snapshot"])
        coffer(env, "prune")
        if not any((out / "repo" / "marks").iterdir()):
            raise SystemExit("prune marked no pack: the golden repository lacks a mark")
        shutil.copytree(out / "repo", work / "copy")
        expected = expected_listing({**env, "COFFER_REPO": str(work / "copy")}, work)
        # The restores must give back the folders' files (run 1 for media,
        # run 3 for docs and scratch): the golden listing is only as good as this.
        restored = {
            (s["owner_key"].partition(":")[2], s["id"]): expected["files"][s["id"]]
            for s in expected["snapshots"]
            if s["owner_kind"] == "folders" and not s["partial"]
        }
        newest = {path: files for (path, _), files in restored.items()}
        assert newest[str(media)] == sources[str(media)]
        assert newest[str(docs)] == sources_run3[str(docs)]
        assert newest[str(scratch)] == sources_run3[str(scratch)]
        (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"golden repository written to {out}")


if __name__ == "__main__":
    main()
