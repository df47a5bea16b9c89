"""What every command shares: global options, configuration, password, repository.

Repository: ``-r/--repo``, else ``COFFER_REPO``, else ``repository`` in the
configuration file, else its first ``[[destination]]``. A ``-r`` value that is
the name of a configured destination opens that destination, with its own
password file and bandwidth limits. Passwords and limits: cli/settings/targets.py.
Remote repositories get a local cache of their metadata objects under the
cache directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cli.errors import ConfigError
from cli.settings.config import Config, load_config
from cli.settings.destinations import Destination, config_limits, parse_destinations
from cli.settings.targets import PasswordSource, RepoTarget, open_target_backend, read_password
from store import Backend, KdfParams, RepoConfig, Repository, default_cache_root


@dataclass
class App:
    """Global options and lazily loaded shared state of one invocation."""

    repo_option: str | None = None
    config_option: Path | None = None
    password_file_option: Path | None = None
    cache_dir_option: Path | None = None
    debug: bool = False
    quiet: bool = False
    limit_upload_option: float | None = None
    limit_download_option: float | None = None
    key_id_option: str | None = None  # the slot to try first (--key-id)
    _config: Config | None = field(default=None, repr=False)
    _destinations: list[Destination] | None = field(default=None, repr=False)
    _repo: Repository | None = field(default=None, repr=False)
    _others: list[Repository] = field(default_factory=list, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_option)
        return self._config

    def destinations(self) -> list[Destination]:
        """The configured destinations, in order (empty without ``[[destination]]``)."""
        if self._destinations is None:
            self._destinations = parse_destinations(self.config)
        return self._destinations

    def repository_chosen(self) -> bool:
        """True when -r or COFFER_REPO picks the repository explicitly."""
        return bool(self.repo_option or os.environ.get("COFFER_REPO"))

    def target(self, value: str | None = None) -> RepoTarget:
        """The repository ``value`` names (a destination's name, a URL or a path),
        or by default the repository of this invocation. Raises ConfigError."""
        value = value or self.repo_option or os.environ.get("COFFER_REPO")
        if value:
            for destination in self.destinations():
                if destination.name == value:
                    return destination.target
            upload, download = config_limits(self.config)
            return RepoTarget(value, limit_upload=upload, limit_download=download)
        url = self.config.repository
        if url:
            upload, download = config_limits(self.config)
            return RepoTarget(url, limit_upload=upload, limit_download=download)
        destinations = self.destinations()
        if destinations:
            return destinations[0].target
        raise ConfigError(
            "no repository given: use -r/--repo, set COFFER_REPO, "
            "or set 'repository' (or a [[destination]]) in the configuration file"
        )

    def repo_url(self) -> str:
        return self.target().url

    def cache_root(self) -> Path | None:
        if self.cache_dir_option:
            return self.cache_dir_option
        value = self.config.data.get("cache_dir")
        return self.config.resolve(str(value)) if value else None

    def limits(self, target: RepoTarget) -> tuple[float | None, float | None]:
        """(upload, download) in KiB/s: the command line's, else the target's."""
        upload = self.limit_upload_option
        download = self.limit_download_option
        return (
            target.limit_upload if upload is None else upload,
            target.limit_download if download is None else download,
        )

    def backend(self, target: RepoTarget | None = None) -> Backend:
        target = target or self.target()
        upload, download = self.limits(target)
        return open_target_backend(
            target,
            cache_root=self.cache_root() or default_cache_root(),
            limit_upload=upload,
            limit_download=download,
        )

    def password(
        self,
        *,
        confirm: bool = False,
        prompt: str = "Repository password: ",
        target: RepoTarget | None = None,
    ) -> bytes:
        """The repository's password (cli/settings/targets.py). Raises PasswordMissing."""
        return read_password(
            PasswordSource.repository(self.password_file_option),
            target,
            confirm=confirm,
            prompt=prompt,
        )

    def open_target(
        self,
        target: RepoTarget,
        source: PasswordSource | None = None,
        *,
        own_file_first: bool = False,
    ) -> Repository:
        """Open another repository for this invocation (closed with the App).

        ``source`` says where its password comes from (default: the
        repository's usual places); ``own_file_first`` puts the target's own
        password file before the command-line option. Raises what
        Repository.open raises.
        """
        password = read_password(
            source or PasswordSource.repository(self.password_file_option),
            target,
            prompt=f"Password for {target.label}: ",
            own_file_first=own_file_first,
        )
        repo = Repository.open(self.backend(target), password, cache_root=self.cache_root())
        self._others.append(repo)
        return repo

    def open_repo(self) -> Repository:
        """The repository, opened once per invocation."""
        if self._repo is None:
            target = self.target()
            backend = self.backend(target)
            self._repo = Repository.open(
                backend,
                self.password(target=target),
                cache_root=self.cache_root(),
                key_id=self.key_id_option,
            )
        return self._repo

    def use_repo(self, repo: Repository) -> None:
        """Make ``repo`` the repository of this invocation (cli/flows/fanout.py)."""
        self._repo = repo

    def init_repo(self, kdf: KdfParams | None, config: RepoConfig | None = None) -> Repository:
        target = self.target()
        backend = self.backend(target)
        self._repo = Repository.init(
            backend,
            self.password(confirm=True, target=target),
            kdf=kdf,
            cache_root=self.cache_root(),
            config=config,
        )
        return self._repo

    def close_repo(self, repo: Repository) -> None:
        """Close a repository opened with :meth:`open_target` before the App ends."""
        if repo in self._others:
            self._others.remove(repo)
        if repo is not self._repo:
            repo.close()

    def close(self) -> None:
        for repo in self._others:
            if repo is not self._repo:
                repo.close()
        self._others = []
        if self._repo is not None:
            self._repo.close()
            self._repo = None
