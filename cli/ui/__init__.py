"""What people see: output helpers, the progress display, the read meter and
the live status line beneath them. Knows nothing of the configuration or of
the commands; imports only ``store``'s escaping helpers and rich/click.
"""
