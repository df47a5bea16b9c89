"""Mount benchmark: coffer mount side by side with restic mount and borg mount.

    python -m tools.bench mount [--workdir DIR] [--big-mib 1024] [--items 100000]
        [--million 1000000] [--engines coffer,restic,borg] [--repeat 3] [--json FILE]

One corpus on disk, backed up by each engine into its own repository:

- ``big/big.bin``: ``--big-mib`` MiB of random bytes (sequential read),
- ``tree/d000 .. d099/``: ``--items`` small files in 100 folders (``find``),
- ``flat/``: ``--items`` small files in one folder (first listing).

Each measurement runs in a fresh mount process (cold FUSE caches; the
repository files stay in the OS page cache, as on a server that just wrote
them), ``--repeat`` times, and the median is reported:

- start: from starting the mount to the corpus root listed in it,
- flat listing: ``ls -f`` of the ``--items`` folder,
- find: ``find tree -printf '%s %T@'`` (names, sizes and times of every item),
- read: ``cat big.bin > /dev/null`` (MB/s),
- peak RSS of the mount process (VmHWM) after all of the above, and its
  current RSS (coffer's peak includes Argon2id's 64 MiB while the password
  opens the repository).

``--million N`` (coffer only) builds an N-item snapshot with the engine's API
(tools.bench.scale's owner: 100 folders) and measures mount start with a cold
and a warm local cache, the RSS after start, one folder's first listing (N/100
items), and with ``--million-find`` a
``find`` over all N items with the process's peak RSS (the inode table is
bounded). Machine notes (cores, load)
go into the output: on a shared machine, compare engines within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tools.bench import scale
from tools.bench.engines import ENGINES, Engine
from tools.bench.measure import median

COFFER = str(Path(sys.executable).with_name("coffer"))
BIG_NAME = "big.bin"


# -- the corpus ------------------------------------------------------------


def make_corpus(root: Path, big_mib: int, items: int) -> Path:
    """Write the corpus once (kept between runs with the same sizes)."""
    corpus = root / f"corpus-{big_mib}m-{items}"
    if (corpus / ".complete").exists():
        return corpus
    shutil.rmtree(corpus, ignore_errors=True)
    (corpus / "big").mkdir(parents=True)
    with open(corpus / "big" / BIG_NAME, "wb") as out:
        for _ in range(big_mib):
            out.write(os.urandom(1 << 20))
    for number in range(items):
        folder = corpus / "tree" / f"d{number % 100:03d}"
        if number < 100:
            folder.mkdir(parents=True)
        (folder / f"f{number:07d}.txt").write_bytes(b"item %d\n" % number * 20)
    (corpus / "flat").mkdir()
    for number in range(items):
        (corpus / "flat" / f"f{number:07d}.txt").write_bytes(b"flat %d\n" % number * 20)
    (corpus / ".complete").write_text("")
    return corpus


# -- mounting each engine ----------------------------------------------------


def mount_command(engine: Engine, mountpoint: Path) -> list[str]:
    """The engine's own mount, in the foreground (backups are made by tools.bench.engines)."""
    if engine.name == "coffer":
        return [COFFER, "-q", "mount", str(mountpoint)]
    if engine.name == "restic":
        return ["restic", "mount", str(mountpoint)]
    if engine.name == "borg":
        return ["borg", "mount", "-f", "::", str(mountpoint)]  # BORG_REPO names the repository
    raise ValueError(engine.name)


# -- measuring -------------------------------------------------------------


def is_mounted(path: Path) -> bool:
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


def rss_mib(pid: int, field: str = "VmHWM") -> float:
    """VmHWM: the peak resident set; VmRSS: the current one."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib(pid: int) -> float:
    return rss_mib(pid, "VmHWM")


def find_corpus_root(mountpoint: Path, timeout: float = 600) -> Path:
    """The directory holding big/, tree/ and flat/ inside a mount (the layouts differ)."""
    deadline = time.monotonic() + timeout
    while True:
        queue = [mountpoint]
        while queue:
            here = queue.pop(0)
            try:
                names = set(os.listdir(here))
            except OSError:
                continue
            if {"big", "tree", "flat"} <= names:
                return here
            if len(here.relative_to(mountpoint).parts) < 10:
                queue.extend(
                    here / n
                    for n in sorted(names)
                    if n not in ("latest", "ids") and (here / n).is_dir()
                )
        if time.monotonic() > deadline:
            raise RuntimeError(f"no corpus found in {mountpoint}")
        time.sleep(0.2)


class Mounted:
    """One mount process of an engine, timed from start to the corpus listed."""

    def __init__(self, engine: Engine, mountpoint: Path) -> None:
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.mountpoint = mountpoint
        started = time.monotonic()
        self.process = subprocess.Popen(
            mount_command(engine, mountpoint),
            env=engine.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while not is_mounted(mountpoint):
            if self.process.poll() is not None:
                raise RuntimeError(f"{engine.name} mount exited with {self.process.returncode}")
            time.sleep(0.01)
        self.root = find_corpus_root(mountpoint)
        self.start_seconds = time.monotonic() - started

    def timed(self, *command: str | Path) -> float:
        started = time.monotonic()
        subprocess.run([str(c) for c in command], check=True, stdout=subprocess.DEVNULL)
        return time.monotonic() - started

    def close(self) -> None:
        subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measure_engine(engine: Engine, work: Path, big_mib: int, repeat: int) -> dict[str, Any]:
    keys = ("start_s", "flat_ls_s", "find_s", "read_mbps", "peak_rss_mib", "rss_mib")
    runs: dict[str, list[float]] = {k: [] for k in keys}
    for attempt in range(repeat):
        mounted = Mounted(engine, work / f"mnt-{engine.name}-{attempt}")
        try:
            runs["start_s"].append(mounted.start_seconds)
            runs["flat_ls_s"].append(mounted.timed("ls", "-f", mounted.root / "flat"))
            runs["find_s"].append(
                mounted.timed("find", mounted.root / "tree", "-printf", "%s %T@\\n")
            )
            seconds = mounted.timed("cat", mounted.root / "big" / BIG_NAME)
            runs["read_mbps"].append(big_mib * 1.048576 / seconds)
            runs["peak_rss_mib"].append(peak_rss_mib(mounted.process.pid))
            runs["rss_mib"].append(rss_mib(mounted.process.pid, "VmRSS"))
        finally:
            mounted.close()
    return {key: round(median(values), 2) for key, values in runs.items()}


# -- the million-item snapshot (coffer) ---------------------------------------


def build_million(work: Path, count: int) -> Path:
    """A repository with one owner of ``count`` items in 100 folders (tools.bench.scale's)."""
    repo_path = work / f"million-{count}-repo"
    if (repo_path / ".complete").exists():
        return repo_path
    shutil.rmtree(repo_path, ignore_errors=True)
    env = {
        **os.environ,
        "COFFER_PASSWORD": scale.PASSWORD,
        "XDG_CACHE_HOME": str(work / "million-build-cache"),
    }
    subprocess.run(
        [COFFER, "-q", "-r", str(repo_path), "init"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ["XDG_CACHE_HOME"] = env["XDG_CACHE_HOME"]
    scale.backup_items(repo_path, count)
    (repo_path / ".complete").write_text("")
    return repo_path


def measure_million(work: Path, count: int, with_find: bool) -> dict[str, Any]:
    repo_path = build_million(work, count)
    out: dict[str, Any] = {"items": count}
    cache = work / "million-mount-cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "COFFER_PASSWORD": scale.PASSWORD}
    for label in ("cold_cache", "warm_cache"):
        mountpoint = work / f"mnt-million-{label}"
        mountpoint.mkdir(parents=True, exist_ok=True)
        command = [COFFER, "-q", "-r", str(repo_path), "--cache-dir", str(cache)]
        started = time.monotonic()
        process = subprocess.Popen([*command, "mount", str(mountpoint)], env=env)
        while not is_mounted(mountpoint):
            if process.poll() is not None:
                raise RuntimeError("coffer mount exited")
            time.sleep(0.01)
        folder = mountpoint / "snapshots/latest/users/scale.user@contoso.example/mail/folder-00"
        names = os.listdir(folder)
        out[f"start_{label}_s"] = round(time.monotonic() - started, 2)
        out[f"rss_after_start_{label}_mib"] = round(peak_rss_mib(process.pid), 1)
        out[f"first_folder_items_{label}"] = len(names)
        if label == "warm_cache" and with_find:
            started = time.monotonic()
            subprocess.run(
                # -H: follow the starting point, a link (pathlib drops a trailing /).
                ["find", "-H", str(mountpoint / "snapshots/latest"), "-printf", "%s\\n"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            out["find_all_s"] = round(time.monotonic() - started, 1)
            out["peak_rss_after_find_mib"] = round(peak_rss_mib(process.pid), 1)
            out["rss_after_find_mib"] = round(rss_mib(process.pid, "VmRSS"), 1)
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        process.wait(60)
    return out


# -- entry point -------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench mount", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workdir", type=Path, default=Path("bench-results/mount"))
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--million", type=int, default=1_000_000, help="0 to skip")
    parser.add_argument("--million-find", action="store_true", help="also find over all of them")
    parser.add_argument("--engines", default="coffer,restic,borg")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine_before": machine(),
        "params": vars(args) | {"workdir": str(work)},
    }
    print(
        f"corpus: {args.big_mib} MiB file, {args.items} items in folders, {args.items} in one",
        flush=True,
    )
    corpus = make_corpus(work, args.big_mib, args.items)
    engines: dict[str, Any] = {}
    for name in args.engines.split(","):
        engine = ENGINES[name](name, work / name)
        engine.reset()
        engine.init()
        print(f"{name}: backing up", flush=True)
        backup_seconds = engine.backup(corpus).seconds
        print(f"{name}: mounting {args.repeat} times", flush=True)
        engines[name] = {"backup_s": round(backup_seconds, 1)} | measure_engine(
            engine, work, args.big_mib, args.repeat
        )
        print(f"{name}: {engines[name]}", flush=True)
    results["engines"] = engines
    if args.million:
        print(f"coffer: {args.million}-item snapshot", flush=True)
        results["million"] = measure_million(work, args.million, args.million_find)
        print(f"million: {results['million']}", flush=True)
    results["machine_after"] = machine()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def table(results: dict[str, Any]) -> str:
    engines = results["engines"]
    rows = [
        ("backup (s)", "backup_s"),
        ("mount start to corpus listed (s)", "start_s"),
        ("first listing of the flat folder, ls -f (s)", "flat_ls_s"),
        ("find with sizes and times over the tree (s)", "find_s"),
        ("sequential read of the big file (MB/s)", "read_mbps"),
        ("peak RSS of the mount process, VmHWM (MiB)", "peak_rss_mib"),
        ("RSS at the end, VmRSS (MiB)", "rss_mib"),
    ]
    lines = ["| | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
    for label, key in rows:
        lines.append(
            f"| {label} | " + " | ".join(str(engines[e].get(key, "")) for e in engines) + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
