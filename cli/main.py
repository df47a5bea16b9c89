"""Entry point of the ``coffer`` command."""


def main() -> None:
    """Run the command line; replaced by the real CLI in the engine issue."""
    raise SystemExit("coffer: not built yet")
