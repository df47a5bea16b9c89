"""Which repository to open and how: its URL, password, bandwidth limits and cache.

A :class:`RepoTarget` is a repository as the command line or the
configuration names it: the repository itself (``-r``, ``COFFER_REPO``,
``repository =``), a ``[[destination]]`` of the configuration, or the source
of ``coffer copy``.

Passwords, for each side, from the first that is set (docs/copy.md):

1. the command-line option (``--password-file``, ``--from-password-file``);
2. the destination's own ``password_file`` in the configuration (when a
   backup sends a run to every destination, this comes first: there the
   option is the usual password, for destinations without a file of their own);
3. the environment (``COFFER_PASSWORD_FILE`` then ``COFFER_PASSWORD``, or
   ``COFFER_FROM_PASSWORD_FILE`` then ``COFFER_FROM_PASSWORD`` for a source;
   a source that is a configured destination without its own file then also
   takes the usual variables, like any destination);
4. a prompt, when standard input is a terminal.

Passwords are never option values (they would show in ``ps``). A trailing
newline in a password file is stripped.

Bandwidth limits (KiB/s): ``--limit-upload``/``--limit-download`` on the command
line, else the destination's ``limit_upload``/``limit_download``, else the
top-level ones of the configuration, else none. 0 means unlimited.
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from cli.errors import ConfigError, PasswordMissing
from store import Backend, is_remote, open_backend, redact_url


@dataclass(frozen=True)
class RepoTarget:
    """A repository to open: where it is, and its own settings from the configuration."""

    url: str
    name: str | None = None  # the [[destination]] it comes from, if any
    password_file: Path | None = None
    limit_upload: float | None = None
    limit_download: float | None = None

    @property
    def label(self) -> str:
        """How messages name it: the destination's name, else the URL."""
        return f"destination '{self.name}'" if self.name else redact_url(self.url)


_USUAL = (("COFFER_PASSWORD_FILE", "COFFER_PASSWORD"),)
_FROM = (("COFFER_FROM_PASSWORD_FILE", "COFFER_FROM_PASSWORD"),)


@dataclass(frozen=True)
class PasswordSource:
    """Where one side's password may come from, besides the target's own file.

    ``envs`` are (file variable, value variable) pairs, tried in order.
    """

    option: Path | None
    option_name: str
    envs: tuple[tuple[str, str], ...]

    @classmethod
    def repository(cls, option: Path | None) -> PasswordSource:
        return cls(option, "--password-file", _USUAL)

    @classmethod
    def copy_source(cls, option: Path | None, target: RepoTarget) -> PasswordSource:
        """The source of a copy: its own variables first; a configured
        destination without a password file then takes the usual password."""
        envs = _FROM + _USUAL if target.name is not None else _FROM
        return cls(option, "--from-password-file", envs)


_MAX_PASSWORD_BYTES = 64 * 1024


def _read_password_file(file: str | os.PathLike[str]) -> bytes:
    try:
        # Bounded (a pipe such as <(pass show coffer) works; /dev/zero does not).
        with open(file, "rb") as handle:
            raw = handle.read(_MAX_PASSWORD_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read password file {file}: {exc.strerror or exc}") from None
    if len(raw) > _MAX_PASSWORD_BYTES:
        raise ConfigError(f"password file {file} is larger than 64 KiB")
    password = raw.removesuffix(b"\n").removesuffix(b"\r")
    if not password:
        raise ConfigError(f"password file {file} is empty")
    return password


def read_password(
    source: PasswordSource,
    target: RepoTarget | None = None,
    *,
    confirm: bool = False,
    prompt: str = "Repository password: ",
    own_file_first: bool = False,
) -> bytes:
    """The password from the first place that has one (module docstring).

    ``own_file_first``: the target's own file goes before the option.
    Raises ConfigError (unreadable or empty file, mismatch) and PasswordMissing.
    """
    own = target.password_file if target else None
    file: str | os.PathLike[str] | None = (
        (own or source.option) if own_file_first else (source.option or own)
    )
    if file:
        return _read_password_file(file)
    for file_env, value_env in source.envs:
        file = os.environ.get(file_env)
        if file:
            return _read_password_file(file)
        value = os.environ.get(value_env)
        if value:
            # The variable's bytes as they are (os.environ holds bytes that are
            # not UTF-8 as surrogate escapes).
            return value.encode("utf-8", "surrogateescape")
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat the password: ") != first:
            raise ConfigError("the passwords do not match")
        if not first:
            raise ConfigError("an empty password is not allowed")
        return first.encode("utf-8", "surrogateescape")
    where = f" for {target.label}" if target and target.name else ""
    file_env, value_env = source.envs[0]
    raise PasswordMissing(
        f"no password{where}: set {file_env} (or {value_env}), or pass {source.option_name}"
    )


def metadata_cache_dir(cache_root: Path, url: str) -> Path:
    """Where a remote repository's metadata objects are cached (FORMAT.md §10)."""
    raw = url.encode("utf-8", "surrogateescape")  # a URL from the environment may not be UTF-8
    return cache_root / "backends" / blake3(raw).hexdigest(length=8)


def open_target_backend(
    target: RepoTarget,
    *,
    cache_root: Path,
    limit_upload: float | None,
    limit_download: float | None,
) -> Backend:
    """The backend of ``target`` with its bandwidth limits, and a metadata cache
    under ``cache_root`` when it is remote. Raises ConfigError for a bad URL."""
    cache = metadata_cache_dir(cache_root, target.url) if is_remote(target.url) else None
    try:
        return open_backend(
            target.url, limit_upload=limit_upload, limit_download=limit_download, cache_dir=cache
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
