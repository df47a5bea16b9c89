"""``make demo``: a guided tour of Coffer on sample data."""
