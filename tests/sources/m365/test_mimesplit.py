"""MIME cutting (sources/m365/backup/mimesplit.py): attachments isolated, lossless."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from sources.m365.backup.mimesplit import split_mime

ATTACHMENT = (b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 3 + b"\r\n") * 400


def _message(headers: bytes, text: bytes) -> bytes:
    return (
        headers + b'Content-Type: multipart/mixed; boundary="=_b1"\r\n\r\n'
        b"preamble\r\n--=_b1\r\nContent-Type: text/plain\r\n\r\n" + text + b"\r\n"
        b"--=_b1\r\nContent-Type: application/pdf; name=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + ATTACHMENT + b"--=_b1--\r\nepilogue\r\n"
    )


def test_split_mime_isolates_the_attachment_whatever_surrounds_it() -> None:
    one = _message(b"Subject: one\r\nTo: a@x\r\n", b"Hello")
    two = _message(b"Subject: another one\r\nTo: b@y\r\nX-Spam: 1\r\n", b"Other text")
    parts_one = list(split_mime(io.BytesIO(one)))
    parts_two = list(split_mime(io.BytesIO(two)))
    assert b"".join(parts_one) == one
    assert b"".join(parts_two) == two
    assert ATTACHMENT in parts_one
    assert ATTACHMENT in parts_two


def test_split_mime_cuts_big_bodies_at_fixed_offsets() -> None:
    body = bytes(range(256)) * 1000 + b"\r\n"
    data = b"Subject: x\r\n\r\n" + body
    parts = list(split_mime(io.BytesIO(data), piece=4096))
    assert b"".join(parts) == data
    assert all(len(p) <= 4096 + 300 for p in parts)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"Content-Type: multipart/mixed; boundary=zz\r\n",
                b'Content-Type: multipart/alternative;\r\n boundary="yy"\r\n',
                b"\r\n",
                b"\n",
                b"--zz\r\n",
                b"--zz--\r\n",
                b"--yy\n",
                b"--yy--\n",
                b"text line\r\n",
                b"x" * 9000 + b"\r\n",
                b"no newline at the end",
                b"\x00\xff binary\r\n",
            ]
        ),
        max_size=40,
    )
)
def test_split_mime_is_lossless_on_any_input(lines: list[bytes]) -> None:
    data = b"".join(lines)
    parts = list(split_mime(io.BytesIO(data), min_body=1024, piece=4096))
    assert b"".join(parts) == data
    assert all(parts)
