"""The process's one area of zeros (store/format/zeros.py)."""

from __future__ import annotations

import pytest

from store.format.zeros import ZEROS, is_zero, zeros


@pytest.mark.parametrize("length", [1, 2, 4096, 2 * 1024 * 1024, len(ZEROS), len(ZEROS) + 1])
def test_zeros_are_zero_and_a_single_one_byte_is_not(length: int) -> None:
    data = bytes(length)
    assert is_zero(data)
    assert is_zero(memoryview(data))
    for where in {0, length // 2, length - 1}:
        changed = bytearray(data)
        changed[where] = 1
        assert not is_zero(bytes(changed)), where
        assert not is_zero(memoryview(changed)), where


def test_nothing_is_not_zero() -> None:
    assert not is_zero(b"")


@pytest.mark.parametrize("length", [0, 17, len(ZEROS), len(ZEROS) + 5])
def test_zeros_hands_out_exactly_the_length(length: int) -> None:
    area = zeros(length)
    assert len(area) == length
    assert bytes(area) == bytes(length)
