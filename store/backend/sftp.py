"""A repository on an SFTP server (OpenSSH or any SFTP v3 server), through paramiko.

URL forms (see docs/backends.md)::

    sftp:[USER@]HOST:PORT/ABSOLUTE/PATH
    sftp:[USER@]HOST:PATH              port 22; PATH relative to the login directory
                                       unless it starts with "/"
    sftp:[USER@][IPV6]:PORT/PATH

Options, as a query string or in the environment (the URL wins):

- ``key=FILE`` / ``COFFER_SFTP_KEY``: a private key file (its passphrase in
  ``COFFER_SFTP_KEY_PASSPHRASE``). Without one, the keys of the running
  ssh-agent and the usual ``~/.ssh/id_*`` files are tried.
- ``known-hosts=FILE`` / ``COFFER_SFTP_KNOWN_HOSTS``: the known_hosts file
  that must name the server (default: ``~/.ssh/known_hosts`` and
  ``/etc/ssh/ssh_known_hosts``). An unknown or changed host key is a
  permanent error.
- ``COFFER_SFTP_INSECURE_NO_HOST_KEY_CHECK=1`` accepts any host key. It
  exists for throwaway test servers; never use it for a real repository.

Writes are atomic: the object goes to ``.tmp-<random>`` beside its final name,
is fsynced when the server offers ``fsync@openssh.com``, and is renamed over
the final name with ``posix-rename@openssh.com`` (an atomic replace, unlike
SFTP v3's plain rename). Temporary names never show in listings; prune
removes stale ones (``temporaries``). ``create`` uses SFTP v3's plain rename,
which OpenSSH's server implements with ``link()`` and so refuses when the
final name exists; a probe checks that the server really refuses.

One SSH connection carries up to ``max_channels`` SFTP sessions (OpenSSH
allows 10 per connection by default); threads borrow one each, so calls run
in parallel. A dropped connection fails the calls in flight with
TransientBackendError and is re-established by the next call.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import logging
import os
import re
import secrets
import socket
import stat as stat_module
import threading
from collections.abc import Iterator
from typing import Any, cast

import paramiko
from paramiko.sftp import CMD_EXTENDED

from store.backend.base import (
    TEMP_PREFIX,
    Backend,
    CreateProbe,
    ObjectInfo,
    TempObject,
    validate_key,
)
from store.backend.options import split_options
from store.backend.sftp_pipeline import read_range
from store.errors import BackendError, BackendFull, ObjectNotFound, TransientBackendError

# paramiko logs every dropped connection at ERROR level; this backend reports
# failures as exceptions (retried, then shown once), so keep paramiko quiet
# unless someone configured its logger on purpose.
if logging.getLogger("paramiko").level == logging.NOTSET:
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)

OPTIONS = ("key", "known-hosts")
DEFAULT_MAX_CHANNELS = 8
CHANNEL_TIMEOUT = 120.0  # seconds without an answer before a call fails


class HostKeyError(BackendError):
    """The server's host key is unknown or does not match known_hosts."""


class _RejectUnknownHost(paramiko.MissingHostKeyPolicy):
    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise HostKeyError(
            f"the SFTP server {hostname} is not in known_hosts (its {key.get_name()} key has "
            f"fingerprint SHA256:{key.fingerprint.removeprefix('SHA256:')}); add it with "
            "ssh-keyscan after checking the fingerprint"
        )


def _close_quietly(resource: paramiko.SSHClient | paramiko.SFTPClient) -> None:
    """Close a client or session that may sit on a dead connection (closing sends a message)."""
    with contextlib.suppress(Exception):
        resource.close()


def translate_error(exc: BaseException, what: str) -> BackendError:
    """Map paramiko, socket and SFTP status errors to the engine's error classes."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyError(
            f"the SFTP server's host key changed (expected {exc.expected_key.get_name()} "
            f"{exc.expected_key.fingerprint}, got {exc.key.fingerprint}): refusing to connect"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return BackendError(f"SFTP authentication failed for {what}: {exc}")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return TransientBackendError(f"SFTP server unreachable for {what}: {exc}")
    if isinstance(exc, paramiko.SSHException | EOFError | ConnectionError | TimeoutError):
        return TransientBackendError(f"SFTP connection problem on {what}: {exc}")
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOENT:
            return ObjectNotFound(f"{what} not found")
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return BackendFull(f"no space left on the SFTP server for {what}")
        if isinstance(exc, socket.gaierror):
            if exc.errno == socket.EAI_AGAIN:
                return TransientBackendError(f"SFTP server name lookup failed for {what}: {exc}")
            return BackendError(f"SFTP server name does not resolve ({what}): {exc}")
        if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
            return TransientBackendError(f"SFTP server unreachable for {what}: {exc}")
        # SFTP v3 reports most server-side failures (including a full disk)
        # as a bare "Failure"; they are not worth retrying blindly.
        return BackendError(f"SFTP server refused {what}: {exc.strerror or exc}")
    return BackendError(f"SFTP failure on {what}: {exc}")


def _channel_closed(exc: OSError) -> bool:
    """paramiko's OSError for a write or read on a channel that has closed."""
    return "socket is closed" in str(exc).lower()


class SftpBackend(Backend):
    """Objects as files under ``path`` on an SFTP server. Thread-safe.

    Connects lazily on first use. ``insecure_no_host_key_check`` disables the
    host key check (test servers only).
    """

    def __init__(
        self,
        host: str,
        path: str,
        *,
        port: int = 22,
        user: str | None = None,
        key_file: str | None = None,
        key_passphrase: str | None = None,
        known_hosts: str | None = None,
        insecure_no_host_key_check: bool = False,
        max_channels: int = DEFAULT_MAX_CHANNELS,
        connect_timeout: float = 15.0,
    ) -> None:
        self._host = host
        self._port = port
        self._user = user or getpass.getuser()
        self._root = path.rstrip("/") or "/"
        self._key_file = key_file
        self._key_passphrase = key_passphrase
        self._known_hosts = known_hosts
        self._insecure = insecure_no_host_key_check
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_channels)
        self._client: paramiko.SSHClient | None = None
        self._generation = 0
        self._idle: list[tuple[int, paramiko.SFTPClient]] = []
        self._fsync_supported = True
        self._closed = False
        self._probe = CreateProbe()

    @property
    def location(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        if self._root.startswith("/"):
            return f"sftp:{self._user}@{host}:{self._port}{self._root}"
        return f"sftp:{self._user}@{host}:{self._root}"  # relative paths imply port 22

    # -- connections ---------------------------------------------------------------

    def _connect(self) -> paramiko.SSHClient:
        key_file = os.path.expanduser(self._key_file) if self._key_file else None
        if key_file and not os.path.isfile(key_file):
            raise BackendError(f"SFTP key file {key_file} does not exist")
        client = paramiko.SSHClient()
        if self._insecure:
            # Explicitly asked for (test servers only), see the module docstring.
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507
        else:
            if self._known_hosts:
                known_hosts = os.path.expanduser(self._known_hosts)
                if not os.path.isfile(known_hosts):
                    raise BackendError(f"SFTP known_hosts file {known_hosts} does not exist")
                client.load_system_host_keys(known_hosts)
            else:
                for candidate in ("/etc/ssh/ssh_known_hosts", "~/.ssh/known_hosts"):
                    path = os.path.expanduser(candidate)
                    if os.path.exists(path):
                        client.load_system_host_keys(path)
            client.set_missing_host_key_policy(_RejectUnknownHost())
        try:
            client.connect(
                self._host,
                port=self._port,
                username=self._user,
                key_filename=key_file,
                passphrase=self._key_passphrase,
                allow_agent=True,
                look_for_keys=key_file is None,
                timeout=self._connect_timeout,
                banner_timeout=self._connect_timeout,
                auth_timeout=self._connect_timeout,
            )
        except BaseException:
            _close_quietly(client)
            raise
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(30)
        return client

    def _open_channel(self) -> tuple[int, paramiko.SFTPClient]:
        with self._lock:
            if self._closed:
                raise BackendError(f"{self.location} is closed")
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                if self._client is not None:
                    _close_quietly(self._client)
                self._client = None
                for _, stale in self._idle:
                    _close_quietly(stale)
                self._idle.clear()
                self._client = self._connect()
                self._generation += 1
            generation = self._generation
            client = self._client
        assert client is not None
        sftp = client.open_sftp()
        channel = sftp.get_channel()
        if channel is not None:
            channel.settimeout(CHANNEL_TIMEOUT)
        return generation, sftp

    @contextlib.contextmanager
    def _session(self, what: str) -> Iterator[paramiko.SFTPClient]:
        """Borrow an SFTP session; errors leave as the engine's error classes."""
        self._slots.acquire()
        entry: tuple[int, paramiko.SFTPClient] | None = None
        try:
            with self._lock:
                while self._idle and entry is None:
                    candidate = self._idle.pop()
                    if candidate[0] == self._generation:
                        entry = candidate
            if entry is None:
                entry = self._open_channel()
            yield entry[1]
        except (OSError, EOFError, paramiko.SSHException) as exc:
            error = translate_error(exc, what)
            if (
                entry is not None
                and isinstance(exc, OSError)
                and exc.errno is None
                and (not self._connected() or _channel_closed(exc))
            ):
                # The connection is gone: a "Socket is closed" or a bare
                # failure from a session that died is worth a retry. paramiko
                # says "Socket is closed" as soon as the channel is, which can
                # be before its transport notices the connection dropped.
                error = TransientBackendError(f"SFTP connection lost during {what}: {exc}")
            if isinstance(error, TransientBackendError) and entry is not None:
                _close_quietly(entry[1])  # the session may be broken: do not reuse it
                entry = None
            raise error from exc
        finally:
            if entry is not None:
                with self._lock:
                    if not self._closed and entry[0] == self._generation:
                        self._idle.append(entry)
                        entry = None
                if entry is not None:
                    _close_quietly(entry[1])
            self._slots.release()

    def _connected(self) -> bool:
        with self._lock:
            transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    # -- paths ---------------------------------------------------------------------

    def _path(self, key: str) -> str:
        validate_key(key)
        return f"{self._root}/{key}"

    def _make_dirs(self, sftp: paramiko.SFTPClient, directory: str) -> None:
        missing: list[str] = []
        probe = directory
        while probe not in ("", "/", "."):
            try:
                sftp.stat(probe)
                break
            except FileNotFoundError:
                missing.append(probe)
                probe = probe.rpartition("/")[0]
        for path in reversed(missing):
            try:
                sftp.mkdir(path, 0o700)
            except OSError:
                # Another writer may have created it meanwhile.
                if not stat_module.S_ISDIR(sftp.stat(path).st_mode or 0):
                    raise

    # -- operations ------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        final = self._path(key)
        with self._session(f"object {key}") as sftp:
            temp = self._write_temp(sftp, final, data)
            try:
                sftp.posix_rename(temp, final)
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(temp)
                raise

    def create(self, key: str, data: bytes) -> bool:
        self._probe.require(self._create_once, self.delete, self.location)
        return self._create_once(key, data)

    def _create_once(self, key: str, data: bytes) -> bool:
        final = self._path(key)
        with self._session(f"object {key}") as sftp:
            temp = self._write_temp(sftp, final, data)
            try:
                # SSH_FXP_RENAME: no replace (OpenSSH links, then unlinks).
                sftp.rename(temp, final)
                return True
            except OSError as exc:
                with contextlib.suppress(Exception):
                    sftp.remove(temp)
                try:
                    sftp.stat(final)
                except FileNotFoundError:
                    raise exc from None  # the rename failed for another reason
                return False
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(temp)
                raise

    def _write_temp(self, sftp: paramiko.SFTPClient, final: str, data: bytes) -> str:
        """Write ``data`` to a fresh temporary file beside ``final``; its path."""
        directory = final.rpartition("/")[0]
        temp = f"{directory}/{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            handle = sftp.open(temp, "wb")
        except FileNotFoundError:
            self._make_dirs(sftp, directory)
            handle = sftp.open(temp, "wb")
        try:
            try:
                handle.chmod(0o600)
                handle.set_pipelined(True)
                handle.write(data)
                handle.flush()
                self._fsync(sftp, handle)
            finally:
                handle.close()
        except BaseException:
            with contextlib.suppress(Exception):
                sftp.remove(temp)
            raise
        return temp

    def _fsync(self, sftp: paramiko.SFTPClient, handle: paramiko.SFTPFile) -> None:
        """Ask the server to fsync (OpenSSH's fsync@openssh.com), when it can."""
        if not self._fsync_supported:
            return
        try:
            # paramiko has no public call for this extension; its request
            # method is the documented way to send one.
            cast(Any, sftp)._request(CMD_EXTENDED, "fsync@openssh.com", handle.handle)
        except OSError as exc:
            if exc.errno is not None or "unsupported" not in str(exc).lower():
                raise
            self._fsync_supported = False

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        with self._session(f"object {key}") as sftp, sftp.open(path, "rb") as handle:
            attributes = handle.stat()
            if stat_module.S_ISDIR(attributes.st_mode or 0):
                raise ObjectNotFound(f"object {key} not found")
            size = attributes.st_size or 0
            end = size if length is None else min(size, offset + length)
            if offset >= end:
                return b""
            return read_range(sftp, handle, offset, end - offset)

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        with self._session(f"object {key}") as sftp:
            attributes = sftp.stat(path)
        if stat_module.S_ISDIR(attributes.st_mode or 0):
            raise ObjectNotFound(f"object {key} not found")
        return ObjectInfo(key, attributes.st_size or 0)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(ObjectNotFound), self._session(f"object {key}") as sftp:
            sftp.remove(path)

    def temporaries(self) -> Iterator[TempObject]:
        found: list[TempObject] = []
        with self._session("listing temporary objects") as sftp:
            pending = [""]
            while pending:
                relative = pending.pop()
                directory = f"{self._root}/{relative}" if relative else self._root
                try:
                    entries = sftp.listdir_attr(directory)
                except FileNotFoundError:
                    continue
                for entry in entries:
                    key = f"{relative}/{entry.filename}" if relative else entry.filename
                    if stat_module.S_ISDIR(entry.st_mode or 0):
                        pending.append(key)
                    elif entry.filename.startswith(TEMP_PREFIX):
                        mtime = entry.st_mtime
                        found.append(
                            TempObject(
                                key,
                                entry.st_size or 0,
                                None if mtime is None else int(mtime) * 10**9,
                            )
                        )
        yield from found

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = prefix.rpartition("/")[0]
        if base:
            validate_key(base)
        found: list[ObjectInfo] = []
        # Collect with one session held, then yield: a slow consumer must not
        # pin an SFTP session.
        with self._session(f"listing {prefix or '/'}") as sftp:
            pending = [base]
            while pending:
                relative = pending.pop()
                directory = f"{self._root}/{relative}" if relative else self._root
                try:
                    entries = sftp.listdir_attr(directory)
                except FileNotFoundError:
                    continue
                for entry in entries:
                    name = entry.filename
                    key = f"{relative}/{name}" if relative else name
                    if stat_module.S_ISDIR(entry.st_mode or 0):
                        if key.startswith(prefix) or prefix.startswith(f"{key}/"):
                            pending.append(key)
                    elif not name.startswith(TEMP_PREFIX) and key.startswith(prefix):
                        found.append(ObjectInfo(key, entry.st_size or 0))
        yield from found

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            client, self._client = self._client, None
        for _, sftp in idle:
            _close_quietly(sftp)
        if client is not None:
            _close_quietly(client)


_PORT_AND_PATH = re.compile(r"(\d{1,5})(/.*)")


def parse_url(rest: str) -> tuple[str | None, str, int, str, dict[str, str]]:
    """Split the part after ``sftp:`` into user, host, port, path and options.

    Raises ValueError for a malformed URL.
    """
    location, options = split_options(rest, OPTIONS, "sftp")
    if location.startswith("//"):
        raise ValueError("write sftp:USER@HOST:PORT/PATH, not sftp://")
    user, _, hostpart = location.rpartition("@")
    if hostpart.startswith("["):
        host, bracket, after = hostpart[1:].partition("]")
        if not bracket or not after.startswith(":"):
            raise ValueError(f"malformed sftp: URL {location!r}")
        after = after[1:]
    else:
        host, colon, after = hostpart.partition(":")
        if not colon:
            raise ValueError(f"sftp: URL {location!r} needs HOST:PATH or HOST:PORT/PATH")
    if not host:
        raise ValueError(f"sftp: URL {location!r} names no host")
    port = 22
    match = _PORT_AND_PATH.fullmatch(after)
    if match:
        port = int(match.group(1))
        after = match.group(2)
        if not 0 < port < 65536:
            raise ValueError(f"invalid port {port} in sftp: URL")
    if not after:
        raise ValueError(f"sftp: URL {location!r} names no path")
    return user or None, host, port, after, options


def from_url(rest: str) -> SftpBackend:
    """Open an ``sftp:`` repository URL (the part after the scheme)."""
    user, host, port, path, options = parse_url(rest)
    return SftpBackend(
        host,
        path,
        port=port,
        user=user,
        key_file=options.get("key") or os.environ.get("COFFER_SFTP_KEY") or None,
        key_passphrase=os.environ.get("COFFER_SFTP_KEY_PASSPHRASE") or None,
        known_hosts=options.get("known-hosts") or os.environ.get("COFFER_SFTP_KNOWN_HOSTS") or None,
        insecure_no_host_key_check=os.environ.get("COFFER_SFTP_INSECURE_NO_HOST_KEY_CHECK") == "1",
    )
