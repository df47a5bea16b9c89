"""Every ``[tenant]`` selection and content key takes effect through ``coffer backup``.

One backup of a simulated tenant with a configuration that uses them all;
what was expected is derived from the simulator's inventory (who is in which
group, which mail folders and old versions exist), and what happened is read
from the backup's report and ``coffer ls``.
"""

from __future__ import annotations

import fnmatch
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support.helpers import CofferEnv, init, new_env
from tools.graphsim.testing import running_tenant

pytestmark = pytest.mark.sim

MAX_ITEM = 1_000_000


def _listing(env: CofferEnv, snapshot: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = env.run("ls", snapshot, "-R", "--json").json()
    return result


def test_tenant_selection_and_content_keys(tmp_path: Path) -> None:
    env = new_env(tmp_path / "coffer")
    init(env)
    with running_tenant(tmp_path / "sim", seed=4, throttling=False) as tenant:
        inventory = tenant.admin.inventory()
        # A group of at least two users: one of them is excluded again.
        group = next(g for g in inventory["groups"].values() if len(g["transitiveUsers"]) >= 2)
        members = sorted(group["transitiveUsers"])
        excluded, chosen = members[0], members[1]
        extra = "info@contoso.onmicrosoft.com"
        assert extra in inventory["users"]
        site = next(s for s in inventory["sites"].values() if s["name"] == "Marketing")
        generated = (tmp_path / "sim" / "coffer.toml").read_text()
        # The secret is the credential: the certificate named beside it is
        # never read (it does not even exist).
        generated = generated.replace('"client-cert.pem"', '"missing-cert.pem"')
        generated = generated.replace('"client-key.pem"', '"missing-key.pem"')
        keys = f"""
auth = "app"
credential = "secret"
token_cache = "tokens.json"
groups = [{json.dumps(group["displayName"])}]
users = ["info@*"]
exclude_users = [{json.dumps(excluded)}]
services = ["contacts", "sharepoint"]
sites = ["*Marketing*"]
teams = []
exclude_folders = ["*Receipts"]
exclude_paths = ["*.pdf"]
max_item_size = "{MAX_ITEM // 1000} KB"
onedrive_versions = false
mime_dedup = false
parallel_owners = 1
workers_per_owner = 2
"""
        config = tmp_path / "sim" / "coffer.toml"
        config.write_text(
            generated.replace("[tenant]\n", "[tenant]\n" + keys, 1)
            + f'\n[tenant.user_services]\n"{chosen}" = ["mail", "onedrive"]\n'
        )
        report = env.run("backup", "--json", COFFER_CONFIG=str(config)).json()
        # [restore]: its client_id and credential replace [tenant]'s, whose
        # secret is now wrong (so a restore that signed in with it would fail).
        info = next(o for o in report["owners"] if o["name"] == extra)
        (tmp_path / "sim" / "wrong-secret.txt").write_text("not the secret\n")
        base = generated.replace('"client-secret.txt"', '"wrong-secret.txt"')
        base += 'credential = "secret"\n'  # [tenant] is the generated file's last table
        client_id = tenant.info.client_id
        for restore_table in (
            f'client_id = "{client_id}"\ncertificate = "client-cert.pem"\n'
            'private_key = "client-key.pem"\ncredential = "certificate"\n',
            f'client_id = "{client_id}"\nclient_secret_file = "client-secret.txt"\n'
            'credential = "secret"\ntoken_cache = "restore-tokens.json"\n'
            "parallel_owners = 1\nworkers_per_owner = 1\n",
        ):
            config.write_text(base + "\n[restore]\n" + restore_table)
            restored = env.run(
                "restore", info["snapshot"], "--to", "original", "--json",
                COFFER_CONFIG=str(config),
            )  # fmt: skip
            assert restored.code == 0, restored.err
        assert (tmp_path / "sim" / "restore-tokens.json").exists()
        config.write_text(base)
        refused = env.run(
            "restore", info["snapshot"], "--to", "original", check=False, COFFER_CONFIG=str(config)
        )
        assert refused.code == 3  # every item failed: the sign-in was refused
        assert "Invalid client secret" in refused.err
        assert " 0 created, " in refused.err

        # The same user's OneDrive again, into a repository of its own, with
        # previous versions (of a file too big for the first run's max_item_size).
        fresh = new_env(tmp_path / "coffer-versions")
        init(fresh)
        config.write_text(
            generated.replace(
                "[tenant]\n",
                f'[tenant]\nusers = ["{chosen}"]\nservices = ["onedrive"]\nsites = []\n'
                "teams = []\nonedrive_versions = true\n",
                1,
            )
        )
        # Without credential = "secret" the certificate named is the credential.
        refused = fresh.run("backup", check=False, COFFER_CONFIG=str(config))
        assert refused.code == 16
        assert "missing-key.pem" in refused.err
        config.write_text(config.read_text() + 'credential = "secret"\n')
        with_versions = fresh.run("backup", "--json", COFFER_CONFIG=str(config)).json()

    owners = {(o["kind"], o["name"]): o for o in report["owners"]}
    site_name = site["webUrl"].removeprefix("https://")
    # groups + users - exclude_users; sites (with the subsites below the one
    # selected: docs/layout.md); teams = [] leaves out every team.
    assert set(owners) == {
        ("users", chosen),
        ("users", extra),
        ("sites", site_name),
        ("sites", f"{site_name}/Archive"),
        ("sites", f"{site_name}/Archive/2019"),
    }
    # user_services replaces services for the user it names; others get the
    # user services among `services`.
    assert set(owners[("users", chosen)]["services"]) == {"mail", "onedrive"}
    assert set(owners[("users", extra)]["services"]) == {"contacts"}
    assert report["settings"] == {
        "mime_dedup": False,
        "onedrive_versions": False,
        "parallel_owners": 1,
        "workers_per_owner": 2,
    }
    assert (tmp_path / "sim" / "tokens.json").exists()  # token_cache

    listing = _listing(env, owners[("users", chosen)]["snapshot"])
    paths = [entry["path"] for entry in listing]
    user = inventory["users"][chosen]
    assert user["messagesByFolder"].get("Receipts")  # there was something to exclude
    assert not any("Receipts" in path.split("/") for path in paths)  # exclude_folders
    assert not any(fnmatch.fnmatch(path, "*.pdf") for path in paths if path.startswith("onedrive"))
    files = [e for e in listing if e["type"] == "file" and e["path"].startswith("onedrive/")]
    assert files
    assert max(e["size"] for e in files) <= MAX_ITEM  # max_item_size
    assert user["driveBytes"] > sum(e["size"] for e in files)
    assert owners[("users", chosen)]["services"]["onedrive"]["items_excluded"] > 0
    assert not any(path.startswith("versions/") for path in paths)
    # onedrive_versions = true: the second run stored the previous versions.
    assert user["driveOlderVersions"]
    [second] = with_versions["owners"]
    versions = [e for e in _listing(fresh, second["snapshot"]) if e["path"].startswith("versions/")]
    assert [e for e in versions if e["type"] == "file"]

    # find's filters on what the first run stored: a file by --name, a mail
    # by --sender and its day (--since/--until), and not before that day.
    named = env.run("find", "--name", "edge-1.bin", "--json").json()
    assert named
    assert {v["title"] for v in named} == {"edge-1.bin"}
    mail = next(
        json.loads(e["attrs"]["graph"])
        for e in listing
        if e["path"].startswith("mail/")
        and e["type"] == "file"
        and '"from"' in e.get("attrs", {}).get("graph", "")
    )
    sender = mail["from"]["emailAddress"]["address"]
    day = date.fromisoformat(mail["receivedDateTime"][:10])
    found = env.run(
        "find", "--sender", sender, "--since", str(day), "--until", str(day), "--json"
    ).json()
    assert mail["subject"] in {v["title"] for v in found}
    assert all(v["when"][:10] == str(day) for v in found)
    before = env.run("find", "--sender", sender, "--until", str(day - timedelta(days=1)), "--json")
    assert all(v["when"][:10] < str(day) for v in before.json())
    nobody = env.run("find", "--sender", "nobody@nowhere.invalid", "--json").json()
    assert nobody == []
