"""Benchmarks: Coffer side by side with restic and borg (figures in docs/performance.md)."""
