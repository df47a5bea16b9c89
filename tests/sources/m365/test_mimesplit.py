"""MIME cutting (sources/m365/backup/mimesplit.py): attachments isolated, lossless."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from sources.m365.backup.mimesplit import split_mime
from tests.sources.m365.support.mimesplit_lines import split_by_lines

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


class _Trickle(io.RawIOBase):
    """A stream whose reads return a random, often small, number of bytes."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data = data
        self._pos = 0
        self._sizes = sizes or [1]
        self._turn = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self._turn += 1
        n = min(
            len(buffer), self._sizes[self._turn % len(self._sizes)], len(self._data) - self._pos
        )
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


_PIECES = [
    b"Content-Type: multipart/mixed; boundary=zz\r\n",
    b'Content-Type: multipart/alternative;\r\n boundary="yy"\r\n',
    b"\r\n",
    b"\n",
    b"--zz\r\n",
    b"--zz--\r\n",
    b"--zz \t\r\n",
    b"--yy\n",
    b"--yy--\n",
    b"--not-a-boundary\r\n",
    b"-\r\n",
    b"--",
    b"text line\r\n",
    b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n" * 30,
    b"x" * 9000 + b"\r\n",
    b"y" * 5000,
    b"no newline at the end",
    b"\x00\xff binary\r\n",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=60),
    st.sampled_from([(64, 16), (300, 100), (4096, 1024), (8192, 8192)]),
    st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=5),
)
def test_split_mime_cuts_where_a_line_by_line_reading_cuts(
    pieces: list[bytes], sizes: tuple[int, int], reads: list[int]
) -> None:
    data = b"".join(pieces)
    piece, min_body = sizes
    expected = list(split_by_lines(io.BytesIO(data), min_body=min_body, piece=piece))
    got = list(split_mime(_Trickle(data, reads), min_body=min_body, piece=piece))  # type: ignore[arg-type]
    assert got == expected


def test_a_large_message_splits_as_line_by_line_with_the_default_sizes() -> None:
    attachment = (b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 2 + b"\r\n") * 250_000  # 18 MB
    data = _message(b"Subject: big\r\n", b"text\r\n" * 1000)
    data = data.replace(ATTACHMENT, attachment)
    expected = list(split_by_lines(io.BytesIO(data)))
    assert list(split_mime(io.BytesIO(data))) == expected
    assert len(expected) > 3  # the 8 MiB pieces of the attachment
