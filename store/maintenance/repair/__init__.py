"""``repair``: rebuild the index from the packs, rewrite snapshots around lost data."""
