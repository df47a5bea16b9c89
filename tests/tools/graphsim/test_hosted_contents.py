"""Teams hosted contents: images pasted into channel messages and replies."""

from __future__ import annotations

import re

import requests

from tools.graphsim.testing import RunningTenant, app_token, trusted_session

from .probe import collect, get

PNG = b"\x89PNG\r\n\x1a\n"


def test_hosted_images_are_listed_without_bytes_and_served_by_value(tenant: RunningTenant) -> None:
    s: requests.Session = trusted_session(tenant.info)
    s.headers["Authorization"] = f"Bearer {app_token(tenant.info)}"
    base = tenant.info.graph_url
    inventory = tenant.admin.inventory(detail=False)
    expected = sum(int(team["hostedContents"]) for team in inventory["teams"].values())
    assert expected > 0
    found = 0
    for tid in inventory["teams"]:
        for channel in get(s, f"{base}/teams/{tid}/channels")["value"]:
            cid = channel["id"]
            for msg in collect(s, f"{base}/teams/{tid}/channels/{cid}/messages"):
                mid = msg["id"]
                paths = [f"messages/{mid}"] + [
                    f"messages/{mid}/replies/{r['id']}"
                    for r in collect(s, f"{base}/teams/{tid}/channels/{cid}/messages/{mid}/replies")
                ]
                for path in paths:
                    where = f"{base}/teams/{tid}/channels/{cid}/{path}"
                    hosted = get(s, f"{where}/hostedContents")["value"]
                    body = get(s, where)["body"]["content"]
                    for one in hosted:
                        assert one["contentBytes"] is None  # write-only in Graph
                        assert f"/{path}/hostedContents/{one['id']}/$value" in body
                        resp = s.get(f"{where}/hostedContents/{one['id']}/$value", timeout=30)
                        assert resp.status_code == 200
                        assert resp.headers["Content-Type"] == "image/png"
                        assert resp.content.startswith(PNG)
                        found += 1
                    if not hosted:
                        assert not re.search(r"hostedContents/[^/]+/\$value", body)
    assert found == expected
    missing = s.get(f"{base}/teams/{tid}/channels/{cid}/messages/{mid}/hostedContents/nope/$value")
    assert missing.status_code == 404
