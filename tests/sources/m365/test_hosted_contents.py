"""Teams hosted contents: pasted images stored beside their thread, shown in its page."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from sources.m365.backup.hosted import sniff
from sources.m365.render.html import render_thread
from tests.sources.m365.support.helpers import open_repo
from tests.sources.m365.support.tenant import Setup
from tools.graphsim.testing import app_token, trusted_session

pytestmark = pytest.mark.sim


def test_pasted_images_are_stored_byte_for_byte_and_inlined_in_the_page(setup: Setup) -> None:
    report = setup.backup()
    assert report["exit_code"] == 0
    graph = trusted_session(setup.tenant.info)
    graph.headers["Authorization"] = f"Bearer {app_token(setup.tenant.info)}"
    repo = open_repo(setup.repo, setup.cache)
    stored = 0
    try:
        for snap in repo.list_snapshots():
            if snap.owner.kind != "teams":
                continue
            reader = repo.reader(snap)
            files = dict(reader.walk(""))
            for path, entry in files.items():
                if entry.attrs.get("type") != "hostedContent":
                    continue
                stored += 1
                data = reader.open(path).read()
                assert sniff(data) == (".png", "image/png")
                stem = path.rsplit(".files/", 1)[0]
                page = reader.open(f"{stem}.html").read().decode()
                uri = f"data:image/png;base64,{base64.b64encode(data).decode()}"
                assert uri in page
                # Graph's own bytes, read the way any client would.
                thread = reader.open(f"{stem}.json").read().decode()
                urls = re.findall(
                    r"https://graph\.microsoft\.com/v1\.0(/teams/[^\"\\]+?/\$value)", thread
                )
                assert urls
                served = [
                    graph.get(f"{setup.tenant.info.graph_url}{u}", timeout=30).content for u in urls
                ]
                assert data in served
                assert "graph.microsoft.com" not in re.sub(r"data:[^\"']+", "", _srcs(page))
    finally:
        repo.close()
    inventory = setup.tenant.admin.inventory(detail=False)
    assert stored == sum(int(t["hostedContents"]) for t in inventory["teams"].values()) > 0
    again = setup.backup()
    assert again["exit_code"] == 0
    assert again["totals"]["items_new"] == again["totals"]["items_changed"] == 0


def _srcs(page: str) -> str:
    return " ".join(re.findall(r"src=\"([^\"]*)\"", page))


def test_a_page_only_inlines_hosted_contents_it_has(tmp_path: Path) -> None:
    ref = "https://graph.microsoft.com/v1.0/teams/t/channels/c/messages/1/hostedContents/{}/$value"
    root = {
        "id": "1",
        "body": {
            "contentType": "html",
            "content": (
                f'<img src="{ref.format("aGF2ZQ==")}"><img src="{ref.format("bWlzc2luZw==")}">'
                '<img src="https://evil.example/x.png" onerror="alert(1)">'
            ),
        },
    }
    page = render_thread(root, [], "General", {"aGF2ZQ==": "data:image/png;base64,AAAA"}).decode()
    assert 'src="data:image/png;base64,AAAA"' in page
    # Not stored: the sanitizer drops the remote source (nothing loads from Graph).
    assert ref.format("bWlzc2luZw==") not in page
    assert "evil.example" not in page
    assert "onerror" not in page
    assert "img-src data:" in page


def test_sniffing_ignores_what_a_header_claims() -> None:
    assert sniff(b"\xff\xd8\xff\xe0rest") == (".jpg", "image/jpeg")
    assert sniff(b"GIF89a...") == (".gif", "image/gif")
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == (".webp", "image/webp")
    assert sniff(b"<script>alert(1)</script>") == (".bin", "application/octet-stream")
