"""The TOML configuration file (``coffer.toml``).

Found through ``-c/--config``, else ``COFFER_CONFIG``, else
``$XDG_CONFIG_HOME/coffer/coffer.toml`` if it exists. Relative paths in it are
relative to the file's own directory. Sections other than the top level are
read by the commands that need them (``[tenant]`` by backup and restore).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.errors import ConfigError

# A configuration file is a few KiB; anything this large is a mistake.
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass
class Config:
    """A loaded configuration (empty when there is no file)."""

    path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, value: str) -> Path:
        """A path from the file, made absolute relative to the file's directory."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def repository(self) -> str | None:
        value = self.data.get("repository")
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{self.path}: 'repository' must be a string")
        return self.resolve_repository(value)

    def resolve_repository(self, value: str) -> str:
        """A repository URL from the file: URLs as they are, paths made absolute."""
        if ":" in value.split("/", maxsplit=1)[0] and not value.startswith("local:"):
            return value  # a URL such as s3:bucket/prefix
        return str(self.resolve(value.removeprefix("local:")))

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: [{name}] must be a table")
        return value


def default_config_path() -> Path | None:
    explicit = os.environ.get("COFFER_CONFIG")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    candidate = (Path(xdg) if xdg else Path.home() / ".config") / "coffer" / "coffer.toml"
    return candidate if candidate.exists() else None


def load_config(path: Path | None) -> Config:
    """Load ``path`` (or the default). Raises ConfigError with the file and reason
    for anything unreadable: missing, a directory, no permission, larger than
    MAX_CONFIG_BYTES (``/dev/zero``), not UTF-8, not TOML."""
    path = path or default_config_path()
    if path is None:
        return Config()
    try:
        with open(path, "rb") as handle:
            # Bounded: /dev/zero or a runaway pipe is refused, not read forever.
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB")
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return Config(path.resolve(), data)
