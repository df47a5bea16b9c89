"""Writing snapshots: a backup run, its owner sessions, the catalogue merge.

Imports store.repository and below.
"""
