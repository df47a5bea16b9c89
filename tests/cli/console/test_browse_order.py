"""Browse lists folders first, then items (each in name order), and its pages
("More…") give every entry exactly once across the switch from folders to items."""

from __future__ import annotations

import html
import re
from pathlib import Path

from starlette.testclient import TestClient

from cli.serve import create_app
from tests.cli.console.kit import make_setup
from tests.cli.console.test_http import sign_in


def test_folders_come_first_and_pages_lose_nothing(tmp_path: Path) -> None:
    setup = make_setup(tmp_path / "s")
    tree = tmp_path / "tree"
    tree.mkdir()
    # 205 files and 3 folders whose names sort among the files' names.
    for i in range(205):
        (tree / f"f{i:03d}.txt").write_text(str(i))
    for name in ("a-dir", "f100-dir", "zz-dir"):
        (tree / name).mkdir()
        (tree / name / "inside.txt").write_text(name)
    setup.env.run("backup", "--path", str(tree))
    with (
        setup.serving() as console,
        TestClient(create_app(console), follow_redirects=False) as client,
    ):
        sign_in(client, "val")
        ids = client.get("/browse", params={"p": "ids"}).text
        snaps = re.findall(r'href="/browse\?p=(ids/[0-9a-f]+)"', ids)
        names: list[str] = []
        url: str | None = None
        for snap in snaps:
            listing = client.get("/browse", params={"p": snap}).text
            if "f000.txt" in listing:
                url = f"/browse?p={snap}"
        assert url is not None
        pages = 0
        while url is not None:
            page = client.get(url).text
            pages += 1
            names += [
                html.unescape(n)
                for n in re.findall(r'<a href="/(?:browse|item)\?p=[^"]+">([^<]+)</a>', page)
            ]
            more = re.search(r'href="(/browse\?p=[^"]+&amp;after=[^"]+)">More', page)
            url = html.unescape(more.group(1)) if more else None
    assert pages == 2
    names = [n for n in names if n.endswith("/") or n.endswith(".txt")]
    assert names[:3] == ["a-dir/", "f100-dir/", "zz-dir/"]
    assert names[3:] == [f"f{i:03d}.txt" for i in range(205)]
