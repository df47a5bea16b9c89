"""The coffer command: argument parsing, configuration, progress and reports."""
