"""Mounting, serving and unmounting: the entry point ``coffer mount`` calls.

One trio run around ``pyfuse3.main()`` (as s3ql does), with a task that turns
signals into a clean unmount. The first SIGINT / SIGTERM / SIGHUP detaches the
mount lazily: processes that are reading finish, nothing new gets in, and we
exit once the last open file is closed (at once when none is). A second signal
ends the mount now. An unmount from outside (``fusermount3 -u``, ``umount``)
simply ends the loop, and :func:`mount_repository` returns normally.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyfuse3
import trio

from mount.allocator import keep_freed_buffers
from mount.errors import (
    FuseUnavailable,
    MountError,
    MountpointBusy,
    MountpointMissing,
    MountpointNotDirectory,
    MountpointNotEmpty,
)
from mount.inodes import DEFAULT_MAX_INODES
from mount.operations import Operations
from store import ExitCode, Repository, StoreError, VirtualFS

log = logging.getLogger("mount")

DEFAULT_REFRESH_SECONDS = 60.0
FUSE_DEVICE = "/dev/fuse"
FUSE_CONF = "/etc/fuse.conf"
# The kernel's read-ahead in the mount (see raise_read_ahead).
READ_AHEAD_KIB = 4096
# The mount's caches, sized to keep the process under 150 MiB on the benchmark
# corpus (docs/performance.md, "Mount"): decrypted chunks, two read-ahead
# windows of mount.openfile (the kernel keeps the pages it read, keep_cache,
# so a larger cache mostly held copies of them; with freed buffers kept for
# reuse, mount/allocator.py, each MiB of cache cost 1.5 MiB of RSS), and
# decoded tree pages (a find or a listing walks a directory's pages once, in order).
MOUNT_CHUNK_CACHE_BYTES = 8 * 1024 * 1024
MOUNT_TREE_CACHE_BYTES = 8 * 1024 * 1024
# After the first signal, say every this many seconds what we are waiting for.
_WAIT_NOTICE_SECONDS = 10.0


def check_mountpoint(mountpoint: Path) -> None:
    """Raise the MountError that says why ``mountpoint`` cannot be used, if any."""
    try:
        info = mountpoint.stat()
    except FileNotFoundError:
        raise MountpointMissing(f"mountpoint {mountpoint} does not exist") from None
    except OSError as exc:
        if exc.errno in (errno.ENOTCONN, errno.ECONNABORTED):  # a dead FUSE mount
            raise MountpointBusy(
                f"{mountpoint} is a FUSE mount whose process has died: "
                f"run 'fusermount3 -u {mountpoint}' first"
            ) from None
        raise MountError(f"cannot use mountpoint {mountpoint}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise MountpointNotDirectory(f"mountpoint {mountpoint} is not a directory")
    if os.path.ismount(mountpoint):
        raise MountpointBusy(f"something is already mounted at {mountpoint}")
    try:
        with os.scandir(mountpoint) as entries:
            busy = any(True for _ in entries)
    except OSError as exc:
        raise MountError(f"cannot read mountpoint {mountpoint}: {exc.strerror}") from None
    if busy:
        raise MountpointNotEmpty(f"mountpoint {mountpoint} is not empty")


def check_fuse(allow_other: bool, device: str = FUSE_DEVICE) -> None:
    """Raise FuseUnavailable unless this process can mount a FUSE filesystem."""
    if not os.path.exists(device):
        raise FuseUnavailable(
            f"FUSE is not available: {device} does not exist "
            "(load the fuse module; in a container, pass the device in)"
        )
    if not os.access(device, os.R_OK | os.W_OK):
        raise FuseUnavailable(f"FUSE is not available: no permission to open {device}")
    if os.geteuid() == 0:
        return
    if shutil.which("fusermount3") is None:
        raise FuseUnavailable(
            "FUSE is not available: fusermount3 is not installed (apt install fuse3)"
        )
    if allow_other and not _user_allow_other():
        raise FuseUnavailable(
            f"--allow-other needs 'user_allow_other' in {FUSE_CONF} (or run as root)"
        )


def _user_allow_other() -> bool:
    try:
        lines = Path(FUSE_CONF).read_text().splitlines()
    except OSError:
        return False
    return any(line.split("#", 1)[0].strip() == "user_allow_other" for line in lines)


def mount_options(allow_other: bool) -> set[str]:
    """Read-only, no set-user-ID programs or devices out of a backup, permissions
    checked by the kernel against the modes shown."""
    options = set(pyfuse3.default_options) | {
        "fsname=coffer",
        "subtype=coffer",
        "ro",
        "nosuid",
        "nodev",
        "default_permissions",
    }
    if allow_other:
        options.add("allow_other")
    return options


def mount_repository(
    repo: Repository,
    mountpoint: str | os.PathLike[str],
    *,
    foreground: bool = True,
    allow_other: bool = False,
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
    ready_callback: Callable[[], None] | None = None,
    max_inodes: int = DEFAULT_MAX_INODES,
) -> None:
    """Mount ``repo`` read-only at ``mountpoint`` and serve it until unmounted.

    Foreground (the default): returns when the filesystem is unmounted, from
    outside (``fusermount3 -u``) or by SIGINT / SIGTERM / SIGHUP (see the
    module docstring). Background: forks a daemon, returns once it serves (or
    raises what stopped it); ``repo`` must not have been read from yet (its
    local cache is opened after the fork, as LMDB requires).

    ``ready_callback`` is called once the filesystem answers (from a worker
    thread in the foreground, so it may use the mount). New snapshots appear
    at most ``refresh_seconds`` after they are written.

    Raises MountError (exit code 17) with a one-line message when the
    mountpoint does not exist, is not a directory, is not empty, is already
    mounted, or FUSE is unavailable; StoreError when the snapshot list cannot
    be read.
    """
    path = Path(os.path.abspath(mountpoint))
    check_mountpoint(path)
    check_fuse(allow_other)
    if foreground:
        _serve(repo, path, allow_other, refresh_seconds, max_inodes, ready_callback)
        return
    _daemonize(repo, path, allow_other, refresh_seconds, max_inodes)
    if ready_callback is not None:
        ready_callback()


def _serve(
    repo: Repository,
    path: Path,
    allow_other: bool,
    refresh_seconds: float,
    max_inodes: int,
    ready_callback: Callable[[], None] | None,
) -> None:
    # Before the first chunk is read: chunk-sized buffers are then reused
    # instead of faulted in afresh (mount/allocator.py).
    keep_freed_buffers()
    vfs = VirtualFS(
        repo,
        refresh_seconds=refresh_seconds,
        chunk_cache_bytes=MOUNT_CHUNK_CACHE_BYTES,
        tree_cache_bytes=MOUNT_TREE_CACHE_BYTES,
    )
    vfs.refresh()  # the first listing's errors are the caller's, before anything is mounted
    ops = Operations(vfs, max_inodes=max_inodes, invalidate=_invalidate)
    try:
        pyfuse3.init(ops, str(path), mount_options(allow_other))
    except RuntimeError:
        raise FuseUnavailable(
            f"could not mount at {path}: the kernel or fusermount3 refused (see above)"
        ) from None
    state = _State()
    try:
        log.info("mounted %s at %s (read-only)", repo.backend.location, path)
        trio.run(_main, ops, path, ready_callback, state)
    finally:
        # After our own lazy detach there is nothing left to unmount.
        pyfuse3.close(unmount=not state.detached)
    log.info("unmounted %s", path)


def _invalidate(parent: int, name: bytes) -> None:
    pyfuse3.invalidate_entry_async(parent, name, ignore_enoent=True)


@dataclass
class _State:
    detached: bool = False


async def _main(
    ops: Operations, path: Path, ready_callback: Callable[[], None] | None, state: _State
) -> None:
    async with trio.open_nursery() as nursery:
        ops.nursery = nursery
        nursery.start_soon(_watch_signals, ops, path, nursery, state)
        nursery.start_soon(_when_serving, path, ready_callback)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


async def _when_serving(path: Path, ready_callback: Callable[[], None] | None) -> None:
    # In threads: both may touch the mount, which answers only from this loop.
    await trio.to_thread.run_sync(raise_read_ahead, path)
    if ready_callback is not None:
        await trio.to_thread.run_sync(ready_callback)


def _mount_device(path: Path) -> str | None:
    """``major:minor`` of the file system mounted at ``path``, from mountinfo
    (no stat of the mount itself, which could wait on our own loop)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):  # the newest mount on top wins
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == str(path):
            return fields[2]
    return None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def raise_read_ahead(path: Path, kib: int = READ_AHEAD_KIB) -> bool:
    """Let the kernel read ahead ``kib`` KiB in the mount (its default, 128 KiB,
    makes it ask for 256 KiB at a time; larger requests cost the same per request
    and FUSE requests are what is slow). Needs root; False if it could not."""
    device = _mount_device(path)
    if device is None:
        return False
    try:
        Path(f"/sys/class/bdi/{device}/read_ahead_kb").write_text(str(kib))
    except OSError as exc:
        log.debug("could not raise read-ahead of %s: %s", path, exc)
        return False
    return True


async def _watch_signals(ops: Operations, path: Path, nursery: trio.Nursery, state: _State) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        signalled = False
        async for signum in signals:
            name = signal.Signals(signum).name
            if signalled:
                log.info("second %s: ending the mount now", name)
                pyfuse3.terminate()
                return
            signalled = True
            log.info("%s: unmounting %s", name, path)
            state.detached = await trio.to_thread.run_sync(_detach, path)
            if not state.detached:
                pyfuse3.terminate()
                return
            if ops.open_files:
                log.info(
                    "waiting for %d open file(s) in the mount to be closed; "
                    "signal again to end it now",
                    ops.open_files,
                )
            # The loop ends by itself when the kernel lets go; say why if it does not.
            nursery.start_soon(_notice_still_in_use)


async def _notice_still_in_use() -> None:
    await trio.sleep(_WAIT_NOTICE_SECONDS)
    log.info("still in use (an open file or a working directory); signal again to end it now")


def _detach(path: Path) -> bool:
    """Lazy unmount: detach now, end the connection when the last user leaves."""
    result = subprocess.run(
        ["fusermount3", "-u", "-z", str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        log.warning("fusermount3 -u -z %s: %s", path, result.stderr.strip())
        return False
    return True


def _daemonize(
    repo: Repository, path: Path, allow_other: bool, refresh_seconds: float, max_inodes: int
) -> None:
    """Fork a daemon that serves the mount; return once it serves, or raise its error."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as report:
            message = report.read().decode("utf-8", "replace")
        os.waitpid(pid, 0)
        if message.startswith("ok"):
            return
        number, _, text = message.partition("\t")
        error = MountError(text.strip() or "the background mount ended before it was ready")
        error.exit_code = int(number) if number.isdigit() else MountError.exit_code
        raise error
    # The child: a new session, then a grandchild that no terminal can reach.
    os.close(read_end)
    os.setsid()
    if os.fork():
        os._exit(ExitCode.OK)
    code: int = ExitCode.OK
    try:
        os.chdir("/")
        _quiet_stdio()

        def ready() -> None:
            os.write(write_end, b"ok\n")
            os.close(write_end)

        _serve(repo, path, allow_other, refresh_seconds, max_inodes, ready)
    except (MountError, StoreError) as exc:
        code = exc.exit_code
        _report(write_end, f"{code}\t{exc}")
    except BaseException as exc:
        code = ExitCode.ERROR
        _report(write_end, f"{code}\tthe background mount failed: {exc!r}")
    finally:
        os._exit(code)


def _report(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode())
        os.close(fd)
    except OSError:
        pass  # already reported ready; the parent is gone


def _quiet_stdio() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
