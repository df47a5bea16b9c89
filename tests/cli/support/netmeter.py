"""A TCP proxy on loopback that counts the bytes going each way (bandwidth tests)."""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class Traffic:
    """Bytes each way, and when the first and the last of them passed (monotonic)."""

    sent: int = 0  # client -> server: uploads and requests
    received: int = 0  # server -> client
    first_sent: float | None = None
    last_sent: float | None = None
    first_received: float | None = None
    last_received: float | None = None

    def upload_window(self) -> float:
        assert self.first_sent is not None
        assert self.last_sent is not None
        return self.last_sent - self.first_sent


class MeterProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``upstream_port``, counting bytes.

    ``traffic`` counts the bytes each way since the last :meth:`reset`.
    Thread-safe; use as a context manager.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.traffic = Traffic()

    def __enter__(self) -> MeterProxy:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)

    def reset(self) -> Traffic:
        """The traffic so far; counting starts again from zero."""
        with self._lock:
            traffic, self.traffic = self.traffic, Traffic()
        return traffic

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()
            with self._lock:
                self._threads.append(thread)

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self._upstream), timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets.update((client, upstream))
        peers = {client: upstream, upstream: client}
        open_ends = [client, upstream]
        try:
            while open_ends:
                readable, _, _ = select.select(open_ends, [], [], 120)
                if not readable:
                    return
                for source in readable:
                    chunk = source.recv(1 << 16)
                    if not chunk:
                        open_ends.remove(source)
                        peers[source].shutdown(socket.SHUT_WR)
                        continue
                    now = time.monotonic()
                    with self._lock:
                        traffic = self.traffic
                        if source is client:
                            traffic.sent += len(chunk)
                            traffic.first_sent = traffic.first_sent or now
                            traffic.last_sent = now
                        else:
                            traffic.received += len(chunk)
                            traffic.first_received = traffic.first_received or now
                            traffic.last_received = now
                    peers[source].sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                sock.close()
                with self._lock:
                    self._sockets.discard(sock)
