"""``prune``: mark, repack and delete what no snapshot references."""
