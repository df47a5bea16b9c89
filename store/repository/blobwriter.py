"""The write path: blobs -> packs -> backend, and index objects after them.

:class:`BlobWriter` is shared by every thread of a backup. ``save`` hashes,
deduplicates, compresses and queues a blob; full packs are encrypted and
uploaded by background threads (at most ``max_uploads`` in flight, so memory
stays bounded and a slow backend slows the producers down); every
``index_every`` packs (or ``index_blobs`` blobs), and at every ``flush``, an index object naming the
uploaded packs is written and merged into the local blob index. Only then are
their blobs visible to deduplication through the index: until that moment
they are deduplicated through the in-memory ``_pending`` set.

Write ordering (FORMAT.md §1): a pack is uploaded before any index names it,
and ``flush`` returns only when every blob saved before it is in an index
object, so a snapshot written after ``flush`` never names a lost blob.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from store.format.crypto import encode_payload, keyed_hash
from store.format.index import PackRecord
from store.format.pack import PackBuilder
from store.format.zeros import ZEROS, is_zero
from store.ids import DATA, PACK_KIND_FOR_TYPE, TREE, BlobId
from store.names import pack_name
from store.repository.ports import PackSink

# A pack of tiny blobs (small mails, tree pages) is closed at this many blobs,
# which bounds the trailer, the memory of a pack in flight and index objects.
MAX_BLOBS_PER_PACK = 20_000


@dataclass
class WriteStats:
    """Counters of one writer (read them after ``flush``)."""

    blobs_new: int = 0
    blobs_duplicate: int = 0
    bytes_new_raw: int = 0
    bytes_new_stored: int = 0
    packs_written: int = 0
    index_objects: int = 0


class BlobWriter:
    """Thread-safe writer of blobs into packs. Use as a context manager or call close()."""

    def __init__(
        self,
        repo: PackSink,
        *,
        max_uploads: int = 2,
        index_every: int = 64,
        index_blobs: int = 50_000,
    ) -> None:
        self._repo = repo
        self._level = repo.config.zstd_level
        self._pack_size = repo.config.pack_size
        self._id_key = repo.keyring.blob_id_key
        self._zero_ids: dict[int, BlobId] = {}  # all-zero chunk length -> its ID
        self._epoch = repo.keyring.current
        self._epoch_key = repo.keyring.current_key
        self._lock = threading.Condition()
        self._builders: dict[int, PackBuilder] = {}
        self._pending: set[bytes] = set()  # saved, not yet in a merged index
        self._in_progress = 0  # saves between reservation and queuing
        self._uploaded: list[PackRecord] = []  # uploaded, not yet indexed
        # Packs taken out of _builders whose upload has not ended. Counted from
        # that moment (under _lock), not from their submission: the thread that
        # closed a pack may wait a long time for an upload slot, and the pack
        # holds other threads' blobs. A flush that saw neither the builder nor
        # the upload let them be named by a snapshot before any index named
        # them, and a crash then left a snapshot naming lost blobs.
        self._unfinished = 0
        self._upload_slots = threading.BoundedSemaphore(max_uploads)
        self._executor = ThreadPoolExecutor(max_uploads, thread_name_prefix="coffer-upload")
        self._index_every = index_every
        # Entries waiting for an index object are held in memory: bound them.
        self._index_blobs = index_blobs
        self._uploaded_blobs = 0
        self._index_lock = threading.Lock()
        self._error: BaseException | None = None
        self.stats = WriteStats()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(flush=exc[0] is None)

    def blob_id(self, data: bytes | memoryview) -> BlobId:
        """The keyed hash of ``data``. Thread-safe.

        An all-zero chunk (the holes of a sparse file or disk image: the
        chunker cuts long runs of zeros at its maximum size, so they repeat)
        is hashed once per length and remembered: comparing with zeros costs
        a twentieth of hashing (issue 14, docs/performance.md). The ID is the
        same either way.
        """
        if len(data) <= len(ZEROS) and is_zero(data):
            cached = self._zero_ids.get(len(data))
            if cached is None:
                cached = self._zero_ids[len(data)] = BlobId(keyed_hash(self._id_key, data))
            return cached
        return BlobId(keyed_hash(self._id_key, data))

    def save(
        self,
        blob_type: int,
        data: bytes | memoryview,
        blob_id: BlobId | None = None,
        *,
        payload: bytes | None = None,
    ) -> BlobId:
        """Store ``data`` as a blob (once) and return its ID. Thread-safe.

        ``payload`` is ``data`` already encoded (codec byte and body, as
        another repository stored it): copies pass it so as not to compress
        again. ``data`` may be a view: it is hashed and encoded before this
        returns and not kept. Raises the first error of a background upload, if any happened.
        """
        if blob_id is None:
            blob_id = self.blob_id(data)
        return self._save(blob_type, blob_id, len(data), data, payload)

    def save_encoded(
        self, blob_type: int, blob_id: BlobId, raw_length: int, payload: bytes
    ) -> BlobId:
        """Store a blob a worker process already hashed and encoded, once. Thread-safe.

        ``blob_id`` is the keyed hash of the plaintext and ``payload`` its codec
        byte and body (store/pipeline): deduplication is still decided here, so
        a blob already stored or in flight is dropped, not stored twice.
        """
        return self._save(blob_type, blob_id, raw_length, None, payload)

    def _save(
        self,
        blob_type: int,
        blob_id: BlobId,
        raw_length: int,
        data: bytes | memoryview | None,
        payload: bytes | None,
    ) -> BlobId:
        self._raise_pending_error()
        with self._lock:
            if blob_id in self._pending:
                self.stats.blobs_duplicate += 1
                return blob_id
        if self._repo.blob_index.contains(blob_id):
            with self._lock:
                self.stats.blobs_duplicate += 1
            return blob_id
        with self._lock:
            if blob_id in self._pending:  # another thread won the race
                self.stats.blobs_duplicate += 1
                return blob_id
            self._pending.add(blob_id)
            self._in_progress += 1
        finished: PackBuilder | None = None
        try:
            if payload is None:
                assert data is not None  # save() passes one of the two
                payload = encode_payload(data, self._level)
            with self._lock:
                kind = PACK_KIND_FOR_TYPE[blob_type]
                builder = self._builders.get(kind)
                if builder is None:
                    builder = self._builders[kind] = PackBuilder(kind, self._epoch, self._epoch_key)
                builder.add(blob_type, blob_id, raw_length, payload)
                self.stats.blobs_new += 1
                self.stats.bytes_new_raw += raw_length
                self.stats.bytes_new_stored += len(payload)
                if builder.size >= self._pack_size or len(builder) >= MAX_BLOBS_PER_PACK:
                    finished = builder
                    del self._builders[kind]
                    self._unfinished += 1
        finally:
            with self._lock:
                self._in_progress -= 1
                self._lock.notify_all()
        if finished is not None:
            self._start_upload(finished)
        return blob_id

    def contains(self, blob_id: BlobId) -> bool:
        """True if the blob is stored: saved by this writer, or in the index."""
        with self._lock:
            if blob_id in self._pending:
                return True
        return self._repo.blob_index.contains(blob_id)

    def save_data(self, data: bytes) -> BlobId:
        return self.save(DATA, data)

    def save_tree(self, data: bytes) -> BlobId:
        return self.save(TREE, data)

    def _start_upload(self, builder: PackBuilder) -> None:
        """Upload a pack already counted in ``_unfinished`` (which the upload's end,
        or a failure to start it, takes back). A pack that cannot be started
        fails the writer: its blobs are deduplicated already and would be lost."""
        try:
            self._upload_slots.acquire()  # backpressure: bounded packs in memory
            try:
                future = self._executor.submit(self._upload, builder)
            except BaseException:
                self._upload_slots.release()
                raise
        except BaseException as exc:
            with self._lock:
                self._unfinished -= 1
                self._error = self._error or exc
                self._lock.notify_all()
            raise
        future.add_done_callback(self._uploaded_one)

    def _upload(self, builder: PackBuilder) -> PackRecord:
        try:
            data, entries = builder.finish()
            self._repo.backend.put_buffer(pack_name(builder.pack_id, builder.kind), data)
            return PackRecord(builder.pack_id, builder.kind, self._epoch, entries)
        finally:
            self._upload_slots.release()

    def _uploaded_one(self, future: Future[PackRecord]) -> None:
        exc = future.exception()
        with self._lock:
            self._unfinished -= 1
            if exc is not None:
                self._error = self._error or exc
                self._lock.notify_all()
                return
            record = future.result()
            self._uploaded.append(record)
            self._uploaded_blobs += len(record.entries)
            self.stats.packs_written += 1
            ready = (
                len(self._uploaded) >= self._index_every
                or self._uploaded_blobs >= self._index_blobs
            )
            self._lock.notify_all()
        if ready:
            try:
                self._write_index()
            except BaseException as error:  # surfaced on the next save/flush
                with self._lock:
                    self._error = self._error or error

    def _write_index(self) -> None:
        with self._index_lock:
            with self._lock:
                records, self._uploaded = self._uploaded, []
                self._uploaded_blobs = 0
            if not records:
                return
            self._repo.write_index(records)
            with self._lock:
                self.stats.index_objects += 1
                for record in records:
                    for entry in record.entries:
                        self._pending.discard(entry.blob_id)

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            raise self._error

    def flush(self) -> None:
        """Upload every open pack and index everything saved so far. Blocks."""
        with self._lock:
            while self._in_progress:
                self._lock.wait()
            builders = [b for b in self._builders.values() if len(b)]
            self._builders = {}
            self._unfinished += len(builders)
        for n, builder in enumerate(builders):
            try:
                self._start_upload(builder)
            except BaseException:
                with self._lock:
                    self._unfinished -= len(builders) - n - 1  # never started
                    self._lock.notify_all()
                raise
        with self._lock:
            # Also the packs other threads closed (or took in their own flush)
            # and may still be handing to an upload.
            while self._unfinished and self._error is None:
                self._lock.wait()
        self._raise_pending_error()
        self._write_index()
        self._raise_pending_error()

    def close(self, *, flush: bool = True) -> None:
        """Flush (unless told not to) and stop the upload threads."""
        try:
            if flush:
                self.flush()
        finally:
            self._executor.shutdown(wait=True)


__all__ = ["DATA", "TREE", "BlobWriter", "WriteStats"]
