"""The admin API, the process (CLI, SIGTERM, files written) and persistence."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tools.graphsim import Simulator, SimulatorError
from tools.graphsim.simulator import ConnectionInfo
from tools.graphsim.testing import RunningTenant, app_token, running_tenant, trusted_session

from .probe import collect, get

pytestmark = pytest.mark.sim

ROOT = Path(__file__).resolve().parents[3]


def test_connection_files(fresh_tenant: RunningTenant) -> None:
    d = fresh_tenant.info.state_dir
    conn = json.loads((d / "connection.json").read_text())
    assert set(conn) == {
        "authority",
        "tenant_id",
        "graph_url",
        "client_id",
        "client_secret",
        "certificate",
        "private_key",
        "thumbprint",
        "ca_file",
        "admin_url",
    }
    assert conn["authority"] == f"https://127.0.0.1:{fresh_tenant.info.port}/{conn['tenant_id']}"
    assert conn["graph_url"].endswith("/v1.0")
    assert conn["admin_url"].endswith("/_sim")
    for key in ("certificate", "private_key", "ca_file"):
        assert not os.path.isabs(conn[key])
        assert (d / conn[key]).is_file()
    for secret in (
        "connection.json",
        "client-secret.txt",
        "client-key.pem",
        "server-key.pem",
        "signing-key.pem",
        "ca-key.pem",
        "tenant.db",
    ):
        assert stat.S_IMODE((d / secret).stat().st_mode) == 0o600, secret
    toml = tomllib.loads((d / "coffer.toml").read_text())
    tenant = toml["tenant"]
    assert "repository" not in toml
    assert tenant["tenant_id"] == conn["tenant_id"]
    assert tenant["client_id"] == conn["client_id"]
    assert (d / tenant["client_secret_file"]).read_text().strip() == conn["client_secret"]
    assert (d / tenant["certificate"]).is_file()
    assert (d / tenant["private_key"]).is_file()
    assert tenant["authority"] == conn["authority"]
    assert tenant["graph_url"] == conn["graph_url"]
    assert (d / tenant["ca_file"]).read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_keep_alive_on_one_connection(fresh_tenant: RunningTenant) -> None:
    token = fresh_tenant.token()
    ctx = ssl.create_default_context(cafile=str(fresh_tenant.info.ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", fresh_tenant.info.port, context=ctx)
    conn.connect()
    sock = conn.sock
    for _ in range(50):
        conn.request("GET", "/v1.0/users?$top=1", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    assert conn.sock is sock  # never reconnected
    conn.close()


def test_inventory_churn_and_mutate(fresh_tenant: RunningTenant) -> None:
    t = fresh_tenant
    s = t.graph()
    before = t.admin.inventory()
    changes = t.admin.churn(5, seed=3)
    assert changes
    assert {c["op"] for c in changes} <= {
        "create",
        "update",
        "move",
        "delete",
        "rename",
        "reply",
    }
    assert t.admin.churn(5, seed=3) != []  # changes again (the tenant moved on)
    after = t.admin.inventory()
    assert after["totals"] != before["totals"]
    upn = next(u for u in after["users"] if after["users"][u]["purpose"] == "user")
    inv = after["users"][upn]
    listed = collect(s, t.url(f"/users/{upn}/messages?$select=id"))
    assert len(listed) == inv["messages"]
    # A user's mistake: delete a file, then change a message.
    drive = get(s, t.url(f"/users/{upn}/drive"))
    file = next(
        i for i in collect(s, t.url(f"/drives/{drive['id']}/items/root/children")) if "file" in i
    )
    t.admin.mutate(op="delete", id=file["id"])
    assert s.get(t.url(f"/drives/{drive['id']}/items/{file['id']}")).status_code == 404
    msg = listed[0]
    t.admin.mutate(op="update", id=msg["id"], changes={"subject": "Changed by a user"})
    assert get(s, t.url(f"/users/{upn}/messages/{msg['id']}"))["subject"] == "Changed by a user"
    raw = t.admin.item(msg["id"])
    assert raw["kind"] == "message"
    assert raw["data"]["subject"] == "Changed by a user"
    folder = inv["wellKnownFolders"]["inbox"]
    created = t.admin.mutate(
        op="create", kind="message", parent=folder, props={"subject": "Injected"}
    )
    assert get(s, t.url(f"/users/{upn}/messages/{created['id']}"))["subject"] == "Injected"
    info = t.admin.info()
    assert info["tenant_id"] == t.info.tenant_id
    assert "client_secret" not in info


def test_restart_keeps_the_tenant(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with running_tenant(state, seed=31, throttling=False) as t:
        s = t.graph()
        upn = next(u["userPrincipalName"] for u in t.admin.users() if u["purpose"] == "user")
        created = s.post(t.url(f"/users/{upn}/messages"), json={"subject": "persisted"}).json()
        tenant_id, secret = t.info.tenant_id, t.info.client_secret
    with running_tenant(state, seed=31) as t2:
        assert t2.info.tenant_id == tenant_id
        assert t2.info.client_secret == secret
        assert (
            get(t2.graph(), t2.url(f"/users/{upn}/messages/{created['id']}"))["subject"]
            == "persisted"
        )
    with pytest.raises(SimulatorError):
        Simulator(state, seed=32).start()


def test_serve_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "served"
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.graphsim",
            "serve",
            "--state-dir",
            str(state),
            "--seed",
            "2",
            "--users",
            "2",
            "--throttle-scale",
            "0.5",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (state / "connection.json").exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        line = proc.stdout.readline() if proc.stdout else ""
        assert "graphsim: serving https://127.0.0.1:" in line

        conn = json.loads((state / "connection.json").read_text())
        info = ConnectionInfo(
            authority=conn["authority"],
            tenant_id=conn["tenant_id"],
            graph_url=conn["graph_url"],
            client_id=conn["client_id"],
            client_secret=conn["client_secret"],
            certificate=state / conn["certificate"],
            private_key=state / conn["private_key"],
            thumbprint=conn["thumbprint"],
            ca_file=state / conn["ca_file"],
            admin_url=conn["admin_url"],
            state_dir=state,
            port=int(conn["graph_url"].split(":")[2].split("/")[0]),
        )
        s = trusted_session(info)
        s.headers["Authorization"] = f"Bearer {app_token(info, method='certificate')}"
        users = s.get(f"{info.graph_url}/users").json()["value"]
        assert (
            sum(
                1
                for u in users
                if u["userPrincipalName"].split("@")[0] not in ("info", "boardroom", "contractor")
            )
            == 2
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    # The inventory command reads the stopped tenant.
    out = subprocess.run(
        [sys.executable, "-m", "tools.graphsim", "inventory", "--state-dir", str(state)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["totals"]["items"] > 0


def test_folder_churn_and_cli_churn(tmp_path: Path) -> None:
    state = tmp_path / "t"
    with running_tenant(state, seed=33, throttling=False) as t:
        s = t.graph()
        changes = t.admin.churn(50, seed=2, kinds=["mailFolder", "driveFolder"])
        assert {c["kind"] for c in changes} <= {"mailFolder", "driveItem"}
        for c in changes:
            if c["op"] == "delete" and c["kind"] == "mailFolder":
                assert s.get(t.url(f"/users/{c['owner']}/mailFolders/{c['id']}")).status_code == 404
            if c["op"] == "rename" and c["kind"] == "driveItem":
                item = t.admin.item(c["key"])
                assert item["data"]["name"].split(" ")[-1].isdigit()
        with pytest.raises(RuntimeError):
            t.admin.churn(1, kinds=["nonsense"])
    # With no server running, the CLI changes the stored tenant directly.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.graphsim",
            "churn",
            "--state-dir",
            str(state),
            "--percent",
            "3",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)
