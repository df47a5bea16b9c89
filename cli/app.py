"""What every command shares: global options, configuration, password, repository.

Repository: ``-r/--repo``, else ``COFFER_REPO``, else ``repository`` in the
configuration file. Password: ``--password-file``, else ``COFFER_PASSWORD_FILE``,
else ``COFFER_PASSWORD``, else a prompt when standard input is a terminal. A
trailing newline in a password file is stripped. Passwords are never accepted
as option values (they would show in ``ps`` and shell history).
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cli.config import Config, load_config
from cli.errors import ConfigError, PasswordMissing
from store import Backend, KdfParams, RepoConfig, Repository, open_backend


@dataclass
class App:
    """Global options and lazily loaded shared state of one invocation."""

    repo_option: str | None = None
    config_option: Path | None = None
    password_file_option: Path | None = None
    cache_dir_option: Path | None = None
    debug: bool = False
    quiet: bool = False
    _config: Config | None = field(default=None, repr=False)
    _repo: Repository | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_option)
        return self._config

    def repo_url(self) -> str:
        url = self.repo_option or os.environ.get("COFFER_REPO") or self.config.repository
        if not url:
            raise ConfigError(
                "no repository given: use -r/--repo, set COFFER_REPO, "
                "or set 'repository' in the configuration file"
            )
        return url

    def cache_root(self) -> Path | None:
        if self.cache_dir_option:
            return self.cache_dir_option
        value = self.config.data.get("cache_dir")
        return self.config.resolve(str(value)) if value else None

    def backend(self) -> Backend:
        url = self.repo_url()
        try:
            return open_backend(url)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def password(self, *, confirm: bool = False, prompt: str = "Repository password: ") -> bytes:
        """The password from the first source that is set. Raises PasswordMissing."""
        file = self.password_file_option or os.environ.get("COFFER_PASSWORD_FILE")
        if file:
            try:
                raw = Path(file).read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read password file {file}: {exc.strerror}") from None
            password = raw.removesuffix(b"\n").removesuffix(b"\r")
            if not password:
                raise ConfigError(f"password file {file} is empty")
            return password
        env = os.environ.get("COFFER_PASSWORD")
        if env:
            return env.encode()
        if sys.stdin.isatty():
            first = getpass.getpass(prompt)
            if confirm and getpass.getpass("Repeat the password: ") != first:
                raise ConfigError("the passwords do not match")
            if not first:
                raise ConfigError("an empty password is not allowed")
            return first.encode()
        raise PasswordMissing(
            "no password: set COFFER_PASSWORD_FILE (or COFFER_PASSWORD), or pass --password-file"
        )

    def open_repo(self) -> Repository:
        """The repository, opened once per invocation."""
        if self._repo is None:
            backend = self.backend()
            self._repo = Repository.open(backend, self.password(), cache_root=self.cache_root())
        return self._repo

    def init_repo(self, kdf: KdfParams | None, config: RepoConfig | None = None) -> Repository:
        backend = self.backend()
        self._repo = Repository.init(
            backend,
            self.password(confirm=True),
            kdf=kdf,
            cache_root=self.cache_root(),
            config=config,
        )
        return self._repo

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None
