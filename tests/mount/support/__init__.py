"""Helpers of the mount tests: the corpus repository they browse (corpus.py) and
mounting it for real with the ``coffer`` executable (mounting.py)."""
