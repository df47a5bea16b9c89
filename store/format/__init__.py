"""The repository format: bytes in, bytes out (store/FORMAT.md sections 2-8).

Encoding, encryption, keys, the configuration, the chunker and the objects a
repository holds (packs, index objects, trees, snapshots). Knows no backend
and no cache; imports only store.errors and store.ids.
"""
