"""Mountpoint and FUSE checks, and the helpers of the runner (no mount needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mount import (
    FuseUnavailable,
    MountError,
    MountpointBusy,
    MountpointMissing,
    MountpointNotDirectory,
    MountpointNotEmpty,
    check_mountpoint,
)
from mount.runner import _unescape, check_fuse, mount_options


def test_mountpoint_checks(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    check_mountpoint(tmp_path / "empty")
    cases: dict[Path, type[MountError]] = {
        tmp_path / "missing": MountpointMissing,
        tmp_path / "file": MountpointNotDirectory,
        tmp_path / "full": MountpointNotEmpty,
        Path("/proc"): MountpointBusy,
    }
    for path, error in cases.items():
        with pytest.raises(error) as caught:
            check_mountpoint(path)
        assert caught.value.exit_code == 17
        assert str(path) in str(caught.value)
        assert "\n" not in str(caught.value)


def test_fuse_unavailable(tmp_path: Path) -> None:
    with pytest.raises(FuseUnavailable) as caught:
        check_fuse(False, device=str(tmp_path / "no-fuse"))
    assert caught.value.exit_code == 17
    assert "does not exist" in str(caught.value)
    check_fuse(False)  # this machine has FUSE


def test_mount_options() -> None:
    assert {"ro", "nosuid", "nodev", "default_permissions"} <= mount_options(False)
    assert "allow_other" not in mount_options(False)
    assert "allow_other" in mount_options(True)


def test_mountinfo_unescape() -> None:
    assert _unescape("/mnt/with\\040space\\011tab\\134040") == "/mnt/with space\ttab\\040"
