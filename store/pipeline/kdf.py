"""Argon2id in a short-lived child process, so a command never maps its memory.

Every command that opens a repository runs Argon2id once (64 MiB, 3 passes by
default, FORMAT.md §3). In the command's own process those 64 MiB came on top
of its interpreter and modules: every command peaked at 100 MiB before doing
any work, more than restic's whole no-change backup (docs/performance.md,
"Argon2id apart"). :func:`derive_apart` runs it in
store/pipeline/kdfchild.py instead, a fresh interpreter that imports nothing
of Coffer's; the command's peak is then its own work's.

Secrets: the password and salt go over a socket pair (the child's standard
input), never its command line or environment (the environment is the
helpers' allow-list: it is started like them, store/pipeline/spawn.py).
The child dies with the
command (``PR_SET_PDEATHSIG``).

If the child cannot be started or gives no answer (no ``fork`` allowed, no
memory for a second interpreter, a sandbox without ``prctl``), the key is
derived in this process as before: the same bytes (libargon2 either way, and
tests compare both), only the memory differs. That fallback is logged.

Thread-safe: each call has its own child.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from pathlib import Path

from store.format.keys import KdfParams
from store.pipeline.spawn import start_child, stop_helper

log = logging.getLogger(__name__)

_CHILD = Path(__file__).with_name("kdfchild.py")
_HEADER = struct.Struct(">IIIII")
_KEY_BYTES = 32


def derive_apart(params: KdfParams, password: bytes, salt: bytes) -> bytes:
    """``params.derive(password, salt)``, computed in a child process.

    Falls back to computing it here when the child fails (see the module
    docstring). Raises only what ``params.derive`` raises.
    """
    key = _in_child(params, password, salt)
    if key is None:
        return params.derive(password, salt)
    return key


def _in_child(params: KdfParams, password: bytes, salt: bytes) -> bytes | None:
    try:
        process, sock = start_child(["-I", str(_CHILD), str(os.getpid())])
    except OSError as exc:
        log.warning("Argon2id runs in this process: cannot start its child (%s)", exc)
        return None
    answer = bytearray()
    with sock:
        try:
            header = _HEADER.pack(
                params.iterations, params.lanes, params.memory_kib, len(salt), len(password)
            )
            sock.sendall(header + salt + password)
            sock.shutdown(socket.SHUT_WR)
            while len(answer) < _KEY_BYTES:
                part = sock.recv(_KEY_BYTES - len(answer))
                if not part:
                    break
                answer += part
        except OSError as exc:
            log.warning("Argon2id runs in this process: its child failed (%s)", exc)
            answer = bytearray()
        finally:
            stop_helper(process, sock)
    if len(answer) != _KEY_BYTES or process.returncode != 0:
        log.warning(
            "Argon2id runs in this process: its child ended with status %s", process.returncode
        )
        return None
    return bytes(answer)
