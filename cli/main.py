"""Entry point of the ``coffer`` command: global options and error handling.

Every failure is one line on standard error and a distinct exit code
(cli/errors.py); a traceback only with ``--debug`` (or ``COFFER_DEBUG=1``).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import traceback
from pathlib import Path

import click

from cli.app import App
from cli.commands import LazyGroup
from cli.errors import CliError
from cli.malloc import limit_malloc_arenas
from cli.ui.output import SafeFormatter
from sources.errors import SourceError
from store import ExitCode, StoreError, defang


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-r",
    "--repo",
    "repo",
    metavar="URL",
    help="Repository, or a destination's name (else COFFER_REPO, else the configuration file).",
)
@click.option(
    "-c",
    "--config",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Configuration file (else COFFER_CONFIG).",
)
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the repository password.",
)
@click.option(
    "--key-id",
    metavar="ID",
    help="Try this key slot (an ID or its first digits) first when opening the repository.",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Local cache directory (default ~/.cache/coffer).",
)
@click.option(
    "--limit-upload",
    type=click.FloatRange(min=0),
    metavar="KIB/S",
    help="Upload at most this many KiB/s (0: unlimited; overrides the configuration).",
)
@click.option(
    "--limit-download",
    type=click.FloatRange(min=0),
    metavar="KIB/S",
    help="Download at most this many KiB/s (0: unlimited; overrides the configuration).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for more).")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="coffer")
@click.pass_context
def cli(
    ctx: click.Context,
    repo: str | None,
    config: Path | None,
    password_file: Path | None,
    key_id: str | None,
    cache_dir: Path | None,
    limit_upload: float | None,
    limit_download: float | None,
    quiet: bool,
    verbose: int,
    debug: bool,
) -> None:
    """Coffer: deduplicated, encrypted backups of Microsoft 365 and local folders."""
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("coffer: %(levelname)s: %(message)s"))
    # force: a second invocation in one process (tests) logs to its own stream.
    logging.basicConfig(level=level, handlers=[handler], force=True)
    app = App(
        repo,
        config,
        password_file,
        cache_dir,
        debug=debug,
        quiet=quiet,
        limit_upload_option=limit_upload,
        limit_download_option=limit_download,
        key_id_option=key_id,
    )
    ctx.obj = app
    ctx.call_on_close(app.close)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("COFFER_DEBUG") == "1"


def main(argv: list[str] | None = None) -> None:
    """Run the command line and exit with its code."""
    args = sys.argv[1:] if argv is None else argv
    debug = _debug_requested(args)
    limit_malloc_arenas()
    try:
        code = cli.main(args=args, prog_name="coffer", standalone_mode=False)
    except click.exceptions.Abort:
        print("coffer: interrupted", file=sys.stderr)
        code = ExitCode.INTERRUPTED
    except click.ClickException as exc:
        # Usage errors quote the arguments, which may be names copied from
        # somewhere hostile: defanged like every other line for people.
        shown = io.StringIO()
        exc.show(file=shown)
        sys.stderr.write(defang(shown.getvalue()))
        code = exc.exit_code
    except (StoreError, SourceError, CliError) as exc:
        if debug:
            sys.stderr.write(defang(traceback.format_exc()))
        print(f"coffer: {defang(str(exc))}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("coffer: interrupted", file=sys.stderr)
        code = ExitCode.INTERRUPTED
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            sys.stderr.write(defang(traceback.format_exc()))
        print(
            f"coffer: unexpected error: {type(exc).__name__}: {defang(str(exc))} "
            "(run with --debug for details)",
            file=sys.stderr,
        )
        code = ExitCode.ERROR
    sys.exit(code if isinstance(code, int) else ExitCode.OK)
