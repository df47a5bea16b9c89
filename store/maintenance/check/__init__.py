"""``check``: the structural pass, the data read, the result and its accounting."""
