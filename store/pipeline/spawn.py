"""Starting and stopping a helper process on a socket (backup workers, the restore's writer,
the Argon2id child).

A helper is ``python -P -m <module>`` (the Argon2id child: ``python -I
<script>``, :func:`start_child`) with one end of an ``AF_UNIX`` stream
socket as its standard input, stdout and stderr on ``/dev/null``, no other
descriptor of ours (``close_fds``: never an owner's lock) and an environment
reduced to an allow-list (no ``COFFER_PASSWORD``, nothing secret: whatever
it needs comes over the socket). Its lifetime is bounded by the socket: when
this process exits, even by ``kill -9``, the kernel closes our end, and the
helper's next read or write ends it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

# Environment variables a helper keeps (everything else, secrets included,
# stays behind): what the interpreter and the C library need to start.
_ENV_KEPT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH", "PYTHONHOME", "TMPDIR")
_ENV_KEPT_PREFIXES = ("MALLOC_", "LD_LIBRARY_PATH")
STOP_SECONDS = 5.0


def worker_environment() -> dict[str, str]:
    """The environment a helper gets: the allow-list above, nothing else."""
    return {
        name: value
        for name, value in os.environ.items()
        if name in _ENV_KEPT or name.startswith(_ENV_KEPT_PREFIXES)
    }


def start_helper(module: str) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start ``module`` as a helper; (the process, our end of its socket).

    Raises OSError when it cannot be started (nothing is left open then).
    """
    return start_child(["-P", "-m", module])


def start_child(arguments: list[str]) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start ``python <arguments>`` as a helper is started (see the module
    docstring); (the process, our end of its socket). The arguments are
    visible to every user of the machine: never a secret.

    Raises OSError when it cannot be started (nothing is left open then).
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        process = subprocess.Popen(
            [sys.executable, *arguments],
            stdin=theirs.fileno(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            env=worker_environment(),
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours


def shutdown_socket(sock: socket.socket) -> None:
    """Tell the helper we are done (it exits at the end of its socket)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed, or the helper is gone


def stop_helper(process: subprocess.Popen[bytes], sock: socket.socket) -> None:
    """End the helper's socket and wait for it to exit (killed after
    STOP_SECONDS). Idempotent; does not close ``sock``."""
    shutdown_socket(sock)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def how_it_ended(process: subprocess.Popen[bytes], otherwise: str) -> str:
    """ "was killed by signal N" or "exited with status N" once the helper has
    ended (waiting up to a second), else ``otherwise``."""
    code = process.poll()
    if code is None:
        try:
            code = process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return otherwise
    if code < 0:
        return f"was killed by signal {-code}"
    return f"exited with status {code}"
