"""Copying snapshots between repositories (re-encrypting every blob).

Imports store.backup (the session that writes the copy) and below.
"""
