"""Argon2id as the key slots use it: libargon2 with a thread per lane gives the
bytes of an independent implementation (OpenSSL's, through cryptography), so
existing repositories open as before (tests/store/test_vectors.py opens the
committed ones)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from store.format.keys import KdfParams


@pytest.mark.parametrize(
    ("iterations", "lanes", "memory_kib"), [(1, 1, 64), (3, 4, 4096), (2, 3, 1000), (1, 16, 2048)]
)
def test_derive_matches_an_independent_implementation(
    iterations: int, lanes: int, memory_kib: int
) -> None:
    password, salt = os.urandom(20), os.urandom(16)
    reference = Argon2id(
        salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory_kib
    ).derive(password)
    assert KdfParams(iterations, lanes, memory_kib).derive(password, salt) == reference
