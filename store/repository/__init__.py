"""An open repository: keys unlocked, blobs read and written, snapshots loaded.

The hub every higher layer uses (:class:`Repository`), the pack writer and the
batched blob reader, the marks prune leaves, the key set and how it is unlocked.
Imports store.cache, store.format and store.backend.
"""
