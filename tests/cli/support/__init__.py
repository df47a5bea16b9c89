"""What the command-line tests share: running the real ``coffer`` (helpers),
reading its terminal output back (escapes), and a byte-counting proxy (netmeter)."""
