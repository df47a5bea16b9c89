"""What the commands run that is more than one call into ``store`` or ``sources``.

``fanout`` (a backup sent to every destination), ``copying`` (a copy with its
progress and report), ``afterbackup`` (the configured retention after a
backup), ``restoring`` (restore filters, summary and journal), ``m365`` and
``m365restore`` (the command line's side of a Microsoft 365 backup and
restore). Built on ``cli/app.py``, ``cli/settings`` and ``cli/ui``; never
imports a command.
"""
