"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

# A shell starts a background job (`make test &`, `nohup ... &`) with SIGINT
# ignored, and an ignored signal stays ignored across exec: every `coffer` a
# test started then ignored Ctrl-C, and the tests that send it SIGINT failed
# (the Ctrl-C test ran the whole backup: every run of it from a background
# loop failed, none from a terminal). Taking SIGINT back here, in the process
# that starts them, gives children the default a terminal gives.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own cache and config locations and no ambient Coffer settings."""
    for name in list(os.environ):
        if name.startswith("COFFER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
