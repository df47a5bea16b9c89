"""Coffer's repository engine: deduplicated, compressed, encrypted snapshots.

Knows nothing of Microsoft 365. Callers import from this package only.
"""
