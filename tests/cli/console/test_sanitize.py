"""The HTML sanitising of mail previews and Teams thread pages (both nh3) against
hostile markup: nothing active and nothing remote survives."""

from __future__ import annotations

import pytest

from cli.serve.preview import mail_preview, sanitize_mail_html
from sources.m365.render.html import render_thread, sanitize
from tests.cli.console.kit import EVIL_HOST, evil_mail

HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=http://tracker.invalid/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '<img src="http://tracker.invalid/p.gif">',
    '<img srcset="http://tracker.invalid/p.gif 2x">',
    '<img src=x onerror="alert(1)">',
    '<svg onload="alert(1)"><image href="http://tracker.invalid/s.png"/></svg>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt&#58;alert(1)">x</a>',
    '<iframe src="http://tracker.invalid/f"></iframe>',
    '<object data="http://tracker.invalid/o"></object>',
    '<link rel=stylesheet href="http://tracker.invalid/s.css">',
    "<style>@import 'http://tracker.invalid/i.css';</style>",
    '<p style="background:url(http://tracker.invalid/b.png)">x</p>',
    '<table background="http://tracker.invalid/t.png"><tr><td>x</td></tr></table>',
    '<video poster="http://tracker.invalid/v.png"></video>',
    '<form action="http://tracker.invalid/"><input name=a></form>',
    '<meta http-equiv="refresh" content="0;url=http://tracker.invalid/">',
    '<base href="http://tracker.invalid/">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style>",
]


@pytest.mark.parametrize("clean", [sanitize_mail_html, sanitize])
@pytest.mark.parametrize("markup", HOSTILE)
def test_nothing_active_or_remote_survives(clean: object, markup: str) -> None:
    assert callable(clean)
    out = clean(f"<p>before</p>{markup}<p>after</p>").lower()
    assert "before" in out  # (an unclosed <style> may swallow what follows: fine)
    for bad in (
        "<script",
        "onerror",
        "onload",
        "javascript",
        EVIL_HOST,
        "<iframe",
        "<object",
        "<link",
        "<meta",
        "<base",
        "<form",
        "<style",
    ):
        assert bad not in out, (markup, out)


@pytest.mark.parametrize("clean", [sanitize_mail_html, sanitize])
def test_ordinary_mail_markup_and_inline_images_stay(clean: object) -> None:
    assert callable(clean)
    pixel = "data:image/png;base64,iVBORw0KGgo="
    out = clean(
        f'<h1>Title</h1><p><b>bold</b> <a href="https://example.com/x">link</a></p>'
        f'<table><tr><td>cell</td></tr></table><img src="{pixel}" alt="inline">'
    )
    assert "<b>bold</b>" in out
    assert 'href="https://example.com/x"' in out
    assert "<td>cell</td>" in out
    assert pixel in out


def test_thread_page_keeps_its_policy_and_drops_remote_images() -> None:
    page = render_thread(
        {
            "id": "1",
            "body": {"contentType": "html", "content": f'<img src="https://{EVIL_HOST}/a.png">hi'},
            "from": {},
        },
        [],
        "General",
    ).decode()
    assert "Content-Security-Policy" in page
    assert "default-src 'none'" in page
    assert EVIL_HOST not in page
    assert "hi" in page


def test_mail_preview_reads_the_hostile_mail() -> None:
    preview = mail_preview(evil_mail())
    assert preview.subject == "Quarterly figures"
    assert preview.html is not None
    assert "Hello from the figures" in preview.html
    assert EVIL_HOST not in preview.html
    assert "<script" not in preview.html
