"""Benchmarks, run by ``make bench`` (``python -m tools.bench NAME [options]``)."""
