"""This host's cache of a repository (store/FORMAT.md section 10).

LMDB environments and files under the cache directory: the blob index, the
catalogue of every owner's items, copy maps, check state, owner locks.
Everything here can be rebuilt from the repository. Imports store.format.
"""
