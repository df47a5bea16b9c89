"""The console's users: a JSON file of names, roles and Argon2id password hashes.

    {"format": "coffer-console-users", "version": 1,
     "users": {"ann": {"role": "restorer", "hash": "$argon2id$v=19$m=65536,t=3,p=4$..."}}}

Hashes are argon2-cffi's (libargon2's reference code): Argon2id with a random
16-byte salt per hash and the parameters in the encoded string (RFC 9106's
second recommended profile, 64 MiB, t=3), verified in constant time by the
library; a hash made with older parameters is re-made at the next sign-in.
argon2-cffi rather than cryptography's Argon2id because it owns the PHC
string format (salt and parameters travel with the hash) and the rehash check,
which we would otherwise write ourselves.

The file is written atomically (a temporary file in the same directory,
fsync, rename) with mode 0600; readers see the old or the new file, never a
mix. Not safe against two writers at once (the CLI is the only writer; the
console only reads, re-reading when the file changes).
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cli.errors import CliError, ConfigError

ROLES = ("viewer", "restorer", "admin")
FORMAT = "coffer-console-users"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MAX_PASSWORD_BYTES = 1024
MIN_PASSWORD_CHARS = 8

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so an unknown name costs the
    same time as a wrong password (no user enumeration by timing). Made on first
    use: hashing costs a fraction of a second that commands need not pay."""
    return _hasher.hash("not a password of anyone")


def role_rank(role: str) -> int:
    """viewer < restorer < admin."""
    return ROLES.index(role)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    hash: str


def check_name(name: str) -> str:
    """``name`` if it is a valid user name. Raises CliError."""
    if not _NAME.fullmatch(name):
        raise CliError(
            f"user name {name!r} is not valid: 1 to 64 letters, digits, '.', '_', '@', '-'"
        )
    return name


def read_password_file(path: Path) -> str:
    """The password in ``path`` (one trailing newline removed). Raises CliError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read password file {path}: {exc.strerror}") from None
    if len(raw) > MAX_PASSWORD_BYTES:
        raise CliError(f"password file {path} is longer than {MAX_PASSWORD_BYTES} bytes")
    try:
        text = raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        raise CliError(f"password file {path} is not UTF-8") from None
    if len(text) < MIN_PASSWORD_CHARS:
        raise CliError(f"the password in {path} is shorter than {MIN_PASSWORD_CHARS} characters")
    return text


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class UserFile:
    """The users file at ``path``. Thread-safe; reads are cached until the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int], dict[str, User]] | None = None

    def load(self) -> dict[str, User]:
        """Every user (empty when the file does not exist). Raises ConfigError."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read users file {self.path}: {exc.strerror}") from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if self._cached is not None and self._cached[0] == stamp:
                return dict(self._cached[1])
            users = self._parse()
            self._cached = (stamp, users)
            return dict(users)

    def _parse(self) -> dict[str, User]:
        try:
            data = json.loads(self.path.read_bytes())
            if data.get("format") != FORMAT:
                raise ValueError("not a users file")
            users = {}
            for name, value in data["users"].items():
                role, encoded = value["role"], value["hash"]
                if role not in ROLES or not isinstance(encoded, str):
                    raise ValueError(f"bad entry for {name!r}")
                users[check_name(name)] = User(name, role, encoded)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, CliError) as exc:
            raise ConfigError(f"users file {self.path} is not readable: {exc}") from None
        return users

    def save(self, users: dict[str, User]) -> None:
        """Replace the file atomically (mode 0600). Raises CliError."""
        data = {
            "format": FORMAT,
            "version": 1,
            "users": {
                u.name: {"role": u.role, "hash": u.hash}
                for u in sorted(users.values(), key=lambda u: u.name)
            },
        }
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".users-", dir=directory)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, indent=2, sort_keys=True)
                    handle.write("\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise CliError(f"cannot write users file {self.path}: {exc.strerror}") from None
        with self._lock:
            self._cached = None

    def add(self, name: str, role: str, password: str) -> None:
        """Add a user. Raises CliError if it exists."""
        users = self.load()
        if check_name(name) in users:
            raise CliError(f"user {name!r} exists (use 'coffer serve user passwd')")
        users[name] = User(name, role, hash_password(password))
        self.save(users)

    def remove(self, name: str) -> None:
        users = self.load()
        if users.pop(name, None) is None:
            raise CliError(f"no user {name!r}")
        self.save(users)

    def passwd(self, name: str, password: str, role: str | None = None) -> None:
        users = self.load()
        user = users.get(name)
        if user is None:
            raise CliError(f"no user {name!r}")
        users[name] = User(name, role or user.role, hash_password(password))
        self.save(users)

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None (same cost either way).
        Upgrades the stored hash when its parameters are outdated."""
        user = self.load().get(name)
        try:
            _hasher.verify(user.hash if user else _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if _hasher.check_needs_rehash(user.hash):
            try:
                self.passwd(name, password)
            except CliError:
                pass  # the old hash still works; the file may be read-only
        return user
