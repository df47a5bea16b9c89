"""How each engine is driven: Coffer, restic and borg, with the same phases."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.bench.measure import Measurement, run_measured

PASSWORD = "benchmark password"


@dataclass
class Engine:
    """One backup tool with its own repository, cache and environment."""

    name: str
    work: Path

    @property
    def repo(self) -> Path:
        return self.work / "repo"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(HOME=str(self.work / "home"), XDG_CACHE_HOME=str(self.work / "cache"))
        return env

    def reset(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        (self.work / "home").mkdir(parents=True)

    def init(self) -> Measurement:
        raise NotImplementedError

    def backup(self, corpus: Path) -> Measurement:
        raise NotImplementedError

    def restore(self, target: Path) -> Measurement:
        raise NotImplementedError

    @staticmethod
    def check(measurement: Measurement, what: str) -> Measurement:
        if measurement.returncode not in (0, 3):
            raise SystemExit(
                f"{what} failed ({measurement.returncode}):\n{measurement.output[-2000:]}"
            )
        return measurement


class Coffer(Engine):
    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(COFFER_REPO=str(self.repo), COFFER_PASSWORD=PASSWORD)
        # As installed, Python reads its compiled modules; with this set (some
        # shells and CI set it) every run would compile Coffer's ~250 modules
        # again, 0.1 to 0.4 s of each run that restic and borg do not pay.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def _coffer(self, *args: str) -> Measurement:
        exe = str(Path(sys.executable).with_name("coffer"))
        return self.check(run_measured([exe, "-q", *args], env=self.env()), f"coffer {args[0]}")

    def init(self) -> Measurement:
        return self._coffer("init")

    def backup(self, corpus: Path) -> Measurement:
        return self._coffer("backup", "--path", str(corpus))

    def restore(self, target: Path) -> Measurement:
        return self._coffer("restore", "latest", "--to-dir", str(target))


class CofferInProcess(Coffer):
    """Coffer without worker processes (``--workers 0``): beside ``coffer``
    (its default, one worker per core but one) in one run, the ratio says
    what the workers bring."""

    def backup(self, corpus: Path) -> Measurement:
        return self._coffer("backup", "--path", str(corpus), "--workers", "0")


class Restic(Engine):
    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(RESTIC_REPOSITORY=str(self.repo), RESTIC_PASSWORD=PASSWORD)
        return env

    def _restic(self, *args: str) -> Measurement:
        return self.check(
            run_measured(["restic", "-q", *args], env=self.env()), f"restic {args[0]}"
        )

    def init(self) -> Measurement:
        # Repository version 2: zstd compression, like Coffer.
        return self._restic("init", "--repository-version", "2")

    def backup(self, corpus: Path) -> Measurement:
        return self._restic("backup", str(corpus))

    def restore(self, target: Path) -> Measurement:
        return self._restic("restore", "latest", "--target", str(target))


class Borg(Engine):
    counter = 0

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(BORG_PASSPHRASE=PASSWORD, BORG_REPO=str(self.repo))
        env.update(
            BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_RELOCATED_REPO_ACCESS_IS_OK="yes"
        )
        return env

    def _borg(self, *args: str, cwd: Path | None = None) -> Measurement:
        return self.check(run_measured(["borg", *args], env=self.env(), cwd=cwd), f"borg {args[0]}")

    def init(self) -> Measurement:
        return self._borg("init", "--encryption", "repokey-blake2")

    def backup(self, corpus: Path) -> Measurement:
        Borg.counter += 1
        # zstd level 3, as Coffer and restic compress (borg's default is lz4).
        return self._borg("create", "--compression", "zstd,3", f"::run{Borg.counter}", str(corpus))

    def restore(self, target: Path) -> Measurement:
        target.mkdir(parents=True, exist_ok=True)
        listing = run_measured(
            ["borg", "list", "--last", "1", "--format", "{archive}"], env=self.env()
        )
        return self._borg("extract", f"::{listing.output.strip()}", cwd=target)


ENGINES: dict[str, type[Engine]] = {
    "coffer": Coffer,
    "coffer-inproc": CofferInProcess,
    "restic": Restic,
    "borg": Borg,
}
