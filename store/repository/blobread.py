"""Reading many blobs at once, grouped by pack: few large reads instead of one per blob.

:func:`read_blobs` is the bulk read path of ``coffer copy``: it looks every
blob up in the index, sorts them by pack and offset, merges neighbours into
ranged reads (a gap of up to ``MERGE_GAP`` bytes is read and thrown away: on
an object store one request costs more than a MiB of transfer), runs those
reads on a few threads, and authenticates, decompresses and re-hashes every
blob before handing it over. Nothing unverified leaves this module.

Memory is bounded by the reads in flight (``workers`` x 2 ranges of at most
``max_range`` bytes, and their blobs) plus the blobs of the range being consumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from store.backend import local_backend
from store.cache.blobindex import BlobLocation
from store.errors import BlobMissing, IntegrityError, ObjectNotFound
from store.format.crypto import (
    AeadCipher,
    cipher_for,
    decrypt_with,
    nonce_for_offset,
    verified_plaintext,
)
from store.format.pack import blob_ad, pack_aead_key
from store.ids import PACK_KIND_FOR_TYPE, BlobId, PackId
from store.names import pack_name
from store.repository.ports import BlobSource

MERGE_GAP = 1024 * 1024
MAX_RANGE = 8 * 1024 * 1024
# The same from a local directory, where a read is a system call: in-flight
# memory follows the range size (a restore of the mail corpus peaked 29 MiB
# higher with 8 MiB ranges than with 1 MiB; docs/performance.md).
LOCAL_MAX_RANGE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LoadedBlob:
    """A blob: its ID, plaintext, payload as stored (codec byte ‖ body) and
    recorded plaintext length. Verified, unless it was read with
    ``decode=False`` (then ``plaintext`` is empty, and only the payload's
    authenticity is known: :func:`store.format.crypto.verified_plaintext`
    does the rest)."""

    blob_id: BlobId
    type: int
    plaintext: bytes
    payload: bytes
    raw_length: int


@dataclass
class _Range:
    pack_id: PackId
    kind: int
    start: int
    end: int
    blobs: list[tuple[BlobId, BlobLocation]]


def plan_ranges(
    located: Iterable[tuple[BlobId, BlobLocation]], max_range: int = MAX_RANGE
) -> list[_Range]:
    """Group blobs into ranged reads: per pack, by offset, neighbours merged
    while a range stays within ``max_range`` bytes (a blob larger than that
    is a range of its own)."""
    by_pack: dict[PackId, list[tuple[BlobId, BlobLocation]]] = {}
    for blob_id, location in located:
        by_pack.setdefault(location.pack_id, []).append((blob_id, location))
    ranges: list[_Range] = []
    for pack_id, blobs in by_pack.items():
        blobs.sort(key=lambda item: item[1].offset)
        current: _Range | None = None
        for blob_id, location in blobs:
            end = location.offset + location.length
            if (
                current is not None
                and location.offset - current.end <= MERGE_GAP
                and end - current.start <= max_range
            ):
                current.end = max(current.end, end)
                current.blobs.append((blob_id, location))
                continue
            kind = PACK_KIND_FOR_TYPE[location.type]
            current = _Range(pack_id, kind, location.offset, end, [(blob_id, location)])
            ranges.append(current)
    return ranges


def _read_range(
    repo: BlobSource, part: _Range, payloads: bool, decode: bool = True
) -> list[LoadedBlob]:
    key = pack_name(part.pack_id, part.kind)
    what = f"pack {part.pack_id.hex()}"
    try:
        data = repo.backend.get(key, part.start, part.end - part.start)
    except ObjectNotFound:
        raise BlobMissing(f"{what} is missing") from None
    if len(data) != part.end - part.start:
        raise IntegrityError(f"{what}: pack is truncated")
    id_key = repo.keyring.blob_id_key
    ciphers: dict[int, AeadCipher] = {}  # by epoch: one key and cipher per range, not per blob
    loaded: list[LoadedBlob] = []
    for blob_id, location in part.blobs:
        blob_what = f"blob {blob_id.hex()[:8]} in {what}"
        begin = location.offset - part.start
        cipher = ciphers.get(location.epoch)
        if cipher is None:
            epoch_key = repo.keyring.epoch_key(location.epoch, blob_what)
            cipher = ciphers[location.epoch] = cipher_for(pack_aead_key(epoch_key, part.pack_id))
        payload = decrypt_with(
            cipher,
            nonce_for_offset(location.offset),
            data[begin : begin + location.length],
            blob_ad(location.type, blob_id),
            blob_what,
        )
        if not decode:
            loaded.append(LoadedBlob(blob_id, location.type, b"", payload, location.raw_length))
            continue
        plaintext = verified_plaintext(id_key, blob_id, payload, location.raw_length, blob_what)
        loaded.append(
            LoadedBlob(
                blob_id,
                location.type,
                plaintext,
                payload if payloads else b"",
                location.raw_length,
            )
        )
    return loaded


def read_blobs(
    repo: BlobSource,
    blob_ids: Iterable[BlobId],
    *,
    workers: int = 4,
    payloads: bool = True,
    max_range: int = MAX_RANGE,
    decode: bool = True,
) -> Iterator[LoadedBlob]:
    """Every blob of ``blob_ids`` (duplicates once), verified, in no particular order.

    ``payloads=False`` leaves ``LoadedBlob.payload`` empty (saves memory when
    only the plaintext is wanted). ``max_range`` bounds each ranged read
    (and so the memory of the reads in flight). ``decode=False`` stops after
    authentication: each blob's payload, not decompressed nor re-hashed, and
    an empty ``plaintext`` (for a restore whose writer process does the rest,
    sources/localdir/offload.py).

    Raises BlobMissing (not indexed, or its pack is gone) and IntegrityError
    (authentication, decompression or hash failure), like Repository.load_blob.
    Reads run on ``workers`` threads (0: one range after the other in the
    calling thread); closing the iterator early waits for the reads in
    flight and discards them.
    """
    wanted = list(dict.fromkeys(blob_ids))
    located = list(zip(wanted, repo.locate_many(wanted), strict=True))
    ranges = plan_ranges(located, max_range)
    if not ranges:
        return
    if workers <= 0:
        local = local_backend(repo.backend)
        if local is not None:
            # One read after the other, but the disk may work on all of
            # them at once: ask for every range first.
            for part in ranges:
                local.will_need(
                    pack_name(part.pack_id, part.kind), part.start, part.end - part.start
                )
        for part in ranges:
            yield from _read_range(repo, part, payloads, decode)
        return
    executor = ThreadPoolExecutor(max(1, workers), thread_name_prefix="coffer-read")
    in_flight: list[Future[list[LoadedBlob]]] = []
    queue = iter(ranges)
    try:
        for part in queue:
            in_flight.append(executor.submit(_read_range, repo, part, payloads, decode))
            if len(in_flight) >= 2 * workers:
                break
        while in_flight:
            done = in_flight.pop(0)
            following = next(queue, None)
            if following is not None:
                in_flight.append(executor.submit(_read_range, repo, following, payloads, decode))
            yield from done.result()
    finally:
        for future in in_flight:
            future.cancel()
        executor.shutdown(wait=True)


__all__ = ["LOCAL_MAX_RANGE", "MAX_RANGE", "LoadedBlob", "plan_ranges", "read_blobs"]
