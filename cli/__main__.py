"""``python -m cli``: the coffer command (what ``coffer serve`` starts its scheduled runs with)."""

from cli.main import main

main()
