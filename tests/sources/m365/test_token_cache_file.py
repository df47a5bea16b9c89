"""The token cache file is written safely (issue 12, item 13).

Another user who can write to the cache's directory plants, at the name the
temporary file used to have (``.<name>.<pid>.tmp``), a symlink to a file of
theirs and a world-readable file; real msal then signs in to the simulator
over HTTPS and the cache is saved. The tokens must land only in a new 0600
file, never through the symlink or into the planted file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sources.m365.graph.auth import token_source
from sources.m365.graph.client import make_http_session
from tests.sources.m365.support.helpers import settings_for
from tools.graphsim.testing import running_tenant

pytestmark = pytest.mark.sim


def test_tokens_never_go_through_a_planted_symlink_or_file(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    cache_file = shared / "tokens.json"
    # What the attacker prepared: the old temporary name of this process, as a
    # symlink to a file they can read, and the same for the next pids as files
    # anyone can read (a pid that is reused).
    theirs = tmp_path / "attacker-reads-this"
    theirs.write_text("")
    os.chmod(theirs, 0o666)
    pid = os.getpid()
    (shared / f".tokens.json.{pid}.tmp").symlink_to(theirs)
    planted_files = []
    for other in range(pid + 1, pid + 4):
        planted = shared / f".tokens.json.{other}.tmp"
        planted.write_text("")
        os.chmod(planted, 0o666)
        planted_files.append(planted)

    with running_tenant(tmp_path / "sim", seed=3, throttling=False) as tenant:
        assert tenant.info is not None
        settings = settings_for(
            tmp_path / "sim", certificate=None, private_key=None, token_cache=str(cache_file)
        )
        conn = settings.connection
        http = make_http_session(str(conn.ca_file) if conn.ca_file else None)
        token = token_source(conn, http).token()

    assert theirs.read_text() == ""  # nothing went through the symlink
    assert all(p.read_text() == "" for p in planted_files)
    st = os.lstat(cache_file)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert token in cache_file.read_text()  # the cache was written, to its own file
    # No temporary file of ours is left behind.
    ours = {p.name for p in shared.iterdir()} - {p.name for p in planted_files}
    assert ours == {"tokens.json", f".tokens.json.{pid}.tmp"}


def test_a_cache_file_others_could_read_is_replaced_by_a_private_one(tmp_path: Path) -> None:
    cache_file = tmp_path / "tokens.json"
    cache_file.write_text("{}")
    os.chmod(cache_file, 0o644)
    with running_tenant(tmp_path / "sim", seed=3, throttling=False) as tenant:
        assert tenant.info is not None
        settings = settings_for(
            tmp_path / "sim", certificate=None, private_key=None, token_cache=str(cache_file)
        )
        conn = settings.connection
        http = make_http_session(str(conn.ca_file) if conn.ca_file else None)
        token = token_source(conn, http).token()
    assert stat.S_IMODE(os.lstat(cache_file).st_mode) == 0o600
    assert token in cache_file.read_text()
