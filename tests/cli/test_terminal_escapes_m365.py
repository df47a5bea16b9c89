"""Hostile names that come from Microsoft Graph never reach the terminal raw.

A mail folder and a message subject with OSC/CSI sequences, a C1 control, a
bidi override, zero-width characters and rich markup are created through
Graph in the simulator (over HTTPS, as a user or another app would), backed
up by the real ``coffer``, then found, listed and restored (dry run) with
human output: no control byte, the names shown escaped; ``--json`` exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.support.escapes import assert_safe, run_raw, unescape
from tests.cli.support.helpers import CofferEnv, init, new_env
from tests.sources.m365.support.restoring import Graph
from tools.graphsim.testing import RunningTenant, running_tenant

pytestmark = pytest.mark.sim

FOLDER = "Folder\x1b]0;pwned\x07\u202eexe.txt"
SUBJECT = "Subject\x1b[2J\x1b[H\u009b31m [bold]x[/] [link=https://evil.example]y[/link] \u200b"
SHOWN_FOLDER = "Folder\\x1b]0;pwned\\x07\\u202eexe.txt"
# In the snapshot's tree the folder's C0 controls are already percent-encoded
# (docs/layout.md); what is left (the bidi override) is escaped when shown.
TREE_FOLDER = "Folder%1B]0;pwned%07\\u202eexe.txt"
SHOWN_SUBJECT = (
    "Subject\\x1b[2J\\x1b[H\\u009b31m [bold]x[/] [link=https://evil.example]y[/link] \\u200b"
)


@dataclass
class Setup:
    env: CofferEnv
    tenant: RunningTenant
    config: str
    upn: str
    other: str
    backup_err: bytes

    def run(self, *args: str) -> tuple[int, bytes, bytes]:
        return run_raw(self.env, *args, COFFER_CONFIG=self.config)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("escapes-m365")
    env = new_env(root / "coffer")
    init(env)
    with running_tenant(root / "sim", seed=7, throttling=False) as tenant:
        graph = Graph(tenant)
        user, other = graph.user(index=0), graph.user(index=1)
        uid = user["id"]
        http = tenant.graph()
        made = http.post(
            tenant.url(f"/users/{uid}/mailFolders"), json={"displayName": FOLDER}, timeout=60
        )
        assert made.status_code == 201, made.text
        message = http.post(
            tenant.url(f"/users/{uid}/mailFolders/{made.json()['id']}/messages"),
            json={"subject": SUBJECT, "body": {"contentType": "text", "content": "hostile"}},
            timeout=60,
        )
        assert message.status_code == 201, message.text
        config = str(root / "sim" / "coffer.toml")
        upn = user["userPrincipalName"]
        code, _out, err = run_raw(
            env, "backup", "--user", upn, "--service", "mail", COFFER_CONFIG=config
        )
        assert code == 0, err
        assert_safe(err, "backup")
        yield Setup(env, tenant, config, upn, other["userPrincipalName"], err)


def test_find_shows_subject_and_folder_escaped_and_json_exact(setup: Setup) -> None:
    code, out, err = setup.run("find", "--owner", setup.upn, "--subject", "Subject*")
    assert code == 0, err
    text = assert_safe(out, "find")
    assert_safe(err, "find stderr")
    assert f'"{SHOWN_SUBJECT}"' in text
    assert f"  {SHOWN_FOLDER}  " in text
    path_line = next(line for line in text.splitlines() if line.startswith("    path   "))
    code, out, err = setup.run("find", "--owner", setup.upn, "--subject", "Subject*", "--json")
    assert code == 0, err
    (version,) = json.loads(assert_safe(out, "find --json"))
    assert version["title"] == SUBJECT
    assert version["folder"] == FOLDER
    assert unescape(path_line.removeprefix("    path   ")) == version["path"]


def test_ls_of_the_mailbox_escapes_the_folder(setup: Setup) -> None:
    code, out, err = setup.run("ls", "latest", "--owner", setup.upn, "-R")
    assert code == 0, err
    text = assert_safe(out, "ls")
    assert f"mail/{TREE_FOLDER}/" in text
    assert "\\u009b31m [bold]x[%2F]" in text  # the message's file name


def test_restore_dry_run_summary_escapes_the_items(setup: Setup, tmp_path: Path) -> None:
    code, out, err = setup.run(
        "restore",
        "latest",
        "--owner",
        setup.upn,
        "--folder",
        "Folder*",
        "--to",
        f"user:{setup.other}",
        "--dry-run",
    )
    assert code == 0, err
    assert_safe(out, "restore stdout")
    text = assert_safe(err, "restore summary")
    assert "would create" in text
    assert f"mail/{TREE_FOLDER}/" in text
    assert "\\u009b31m [bold]x[%2F]" in text  # the message's file name
