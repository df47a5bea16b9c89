"""The [tenant] table (sources/m365/settings.py): defaults and checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sources.m365.graph.errors import (
    M365ConfigError,
)
from sources.m365.settings import from_table, parse_size


def test_settings_defaults_and_checks(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s3cret\n")
    table = {"tenant_id": "t", "client_id": "c", "client_secret_file": "secret.txt"}
    settings_ = from_table(table, tmp_path)
    assert settings_.connection.credential == "secret"
    assert settings_.connection.read_secret() == "s3cret"
    assert "s3cret" not in repr(settings_)
    assert settings_.selection.user_selected("anyone@x", in_groups=False)
    assert settings_.selection.services_for("a@x") == ("mail", "contacts", "calendar", "onedrive")
    assert settings_.connection.graph_url == "https://graph.microsoft.com/v1.0"
    narrowed = from_table(
        {
            **table,
            "users": ["*@sales.contoso.com"],
            "exclude_users": ["bot*"],
            "services": ["mail", "teams"],
            "user_services": {"ceo@*": ["mail", "onedrive"]},
            "exclude_folders": ["Junk Email"],
            "max_item_size": "10M",
        },
        tmp_path,
    )
    sel = narrowed.selection
    assert sel.user_selected("ann@sales.contoso.com", in_groups=False)
    assert not sel.user_selected("bot1@sales.contoso.com", in_groups=False)
    assert not sel.user_selected("bob@contoso.com", in_groups=False)
    assert sel.services_for("ann@x") == ("mail",)
    assert sel.services_for("ceo@x") == ("mail", "onedrive")
    assert sel.folder_excluded("junk email")
    assert sel.max_item_size == 10 * 1024 * 1024
    assert parse_size("2 GiB") == 2 * 1024**3
    for bad in (
        {**table, "services": ["fax"]},
        {**table, "authority": "http://login"},
        {**table, "surprise": 1},
        {"tenant_id": "t", "client_id": "c"},
        {**table, "parallel_owners": 0},
    ):
        with pytest.raises(M365ConfigError):
            from_table(bad, tmp_path)
