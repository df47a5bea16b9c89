"""The command line's configuration: the TOML file and what it names.

``config`` (the file), ``targets`` (a repository to open: URL, password,
bandwidth limits, cache), ``destinations`` (``[[destination]]`` tables),
``retention`` (``[retention]`` policies). Parsing and checking only: nothing
here opens a repository or prints (that is ``cli/app.py``, ``cli/flows`` and
``cli/ui``). Imports only ``cli.errors`` and ``store``.
"""
