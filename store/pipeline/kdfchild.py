"""The Argon2id child: derives one key slot's wrapping key and exits.

Run by store/pipeline/kdf.py as ``python -I <this file>``, a script and not
``-m store...``, so that it imports neither the store package nor anything
else of Coffer's: the interpreter, libargon2 and Argon2id's memory
(64 MiB by default) are all this process ever holds, and the command that
asked never maps those 64 MiB itself.

Protocol, on the socket that is its standard input (nothing in its command
line or environment): one request, ``>IIIII`` (iterations, lanes, memory in
KiB, salt length, password length) then the salt and the password; one
answer, the 32-byte hash. Any malformed request or failure ends it with a
non-zero status and no answer. It dies with the process that started it
(``PR_SET_PDEATHSIG``), so a ``kill -9`` of that command does not leave an
Argon2id run behind.
"""

import ctypes
import os
import signal
import socket
import struct
import sys

_HEADER = struct.Struct(">IIIII")
# The child's own statuses, read only by store/pipeline/kdf.py (not Coffer's
# exit codes: store.ExitCode would import the store package, which this
# process exists not to).
_ANSWERED = 0
_FAILED = 1
_REFUSED = 2
_PR_SET_PDEATHSIG = 1
# Bounds far above any accepted slot's (store/format/keys.py checks the real
# ones before asking): only a guard against a garbled request.
_MAX_FIELD = 1 << 16


def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(_FAILED)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        part = sock.recv(size - len(data))
        if not part:
            raise EOFError("request cut short")
        data += part
    return bytes(data)


def main() -> int:
    parent = int(sys.argv[1])
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command decides on Ctrl-C
    sock = socket.socket(fileno=0)
    iterations, lanes, memory_kib, salt_len, password_len = _HEADER.unpack(
        _read_exactly(sock, _HEADER.size)
    )
    if salt_len > _MAX_FIELD or password_len > _MAX_FIELD:
        return _REFUSED
    salt = _read_exactly(sock, salt_len)
    password = _read_exactly(sock, password_len)

    from argon2.low_level import Type, hash_secret_raw

    key = hash_secret_raw(
        password,
        salt,
        time_cost=iterations,
        memory_cost=memory_kib,
        parallelism=lanes,
        hash_len=32,
        type=Type.ID,
    )
    sock.sendall(key)
    return _ANSWERED


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # the status is the answer; no traceback on stderr
        sys.exit(_FAILED)
