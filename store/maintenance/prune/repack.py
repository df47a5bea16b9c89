"""Copying live blobs out of partly used packs into fresh ones (for prune).

Unlike :class:`BlobWriter`, nothing is deduplicated against the index (the
blobs are in the index: in the packs being emptied). Each blob is decrypted
and its ID re-hashed before it is copied, so damage is never copied
silently: :class:`IntegrityError` stops the repack (and prune) before any
index changes. The compressed payload is reused as is; the new packs are
encrypted under the current key epoch (so repacking also moves data to a
rotated key). Not thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable

from store.errors import IntegrityError
from store.format.crypto import decode_payload, decrypt, keyed_hash, nonce_for_offset
from store.format.index import PackRecord
from store.format.pack import PackBuilder, blob_ad, pack_aead_key
from store.ids import PACK_KIND_FOR_TYPE, BlobId
from store.names import pack_name
from store.repository.repository import Repository


class Repacker:
    """Builds new packs from blobs copied out of old ones, and uploads them."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._builders: dict[int, PackBuilder] = {}
        self.records: list[PackRecord] = []
        self.bytes_copied = 0
        self.blobs_copied = 0
        self._copied: set[BlobId] = set()

    def copy(self, record: PackRecord, keep: Iterable[BlobId]) -> None:
        """Copy the blobs ``keep`` of the pack ``record`` into new packs."""
        wanted = set(keep) - self._copied
        entries = [e for e in record.entries if e.blob_id in wanted]
        if not entries:
            return
        what = pack_name(record.pack_id, record.kind)
        data = self._repo.backend.get(what)
        key = pack_aead_key(self._repo.keyring.epoch_key(record.epoch, what), record.pack_id)
        id_key = self._repo.keyring.blob_id_key
        for entry in entries:
            label = f"blob {entry.blob_id.hex()[:8]} in {what}"
            sealed = data[entry.offset : entry.offset + entry.length]
            payload = decrypt(
                key,
                nonce_for_offset(entry.offset),
                sealed,
                blob_ad(entry.type, entry.blob_id),
                label,
            )
            plain = decode_payload(payload, label, entry.raw_length)
            if keyed_hash(id_key, plain) != entry.blob_id or len(plain) != entry.raw_length:
                raise IntegrityError(f"{label}: content does not match its ID; run 'coffer check'")
            self._add(entry.type, entry.blob_id, entry.raw_length, payload)
            self._copied.add(entry.blob_id)

    def _add(self, blob_type: int, blob_id: BlobId, raw_length: int, payload: bytes) -> None:
        kind = PACK_KIND_FOR_TYPE[blob_type]
        keyring = self._repo.keyring
        builder = self._builders.get(kind)
        if builder is None:
            builder = self._builders[kind] = PackBuilder(kind, keyring.current, keyring.current_key)
        builder.add(blob_type, blob_id, raw_length, payload)
        self.blobs_copied += 1
        self.bytes_copied += len(payload)
        if builder.size >= self._repo.config.pack_size:
            del self._builders[kind]
            self._upload(builder)

    def _upload(self, builder: PackBuilder) -> None:
        data, entries = builder.finish()
        self._repo.backend.put_buffer(pack_name(builder.pack_id, builder.kind), data)
        self.records.append(
            PackRecord(builder.pack_id, builder.kind, self._repo.keyring.current, entries)
        )

    def finish(self) -> list[PackRecord]:
        """Upload what is left; returns the records of every new pack."""
        for kind in list(self._builders):
            builder = self._builders.pop(kind)
            if len(builder):
                self._upload(builder)
        return self.records
