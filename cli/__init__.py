"""The coffer command: argument parsing, configuration, progress and reports.

Grouped by role, each group importing only the ones below it (import-linter
contract "Inside cli" in pyproject.toml)::

    main.py, __main__.py   the entry point: global options, one-line errors, exit codes
    commands/  serve/  schedules/
                           one module per ``coffer`` subcommand; the web console and
                           its schedules (they start commands and commands start them)
    flows/                 what several commands run: the fan-out of a backup to every
                           destination, copying, restoring, the Microsoft 365 glue,
                           retention after a backup
    app.py                 the invocation: global options, configuration, password and
                           the opened repository, shared by every command and flow
    settings/ | ui/        the configuration file and what it names (repositories,
                           destinations, retention); what people see on the terminal
    errors.py | malloc.py  the command line's errors and exit codes; process settings

Why four modules stay at the top of ``cli``: ``main.py`` is the installed entry
point (``cli.main:main``) and the only module that sees every group.
``app.py`` is not a setting but the state of one run built from them (it opens
repositories), used by commands, flows, the console and the schedules alike, so
it is its own layer between ``flows`` and ``settings``. ``errors.py`` is the
bottom every group raises from. ``malloc.py`` tunes the process for ``main``
and imports nothing of ours.
"""
