"""Fault injection for backend tests (like kopia's blobtesting), always seeded.

Two tools:

- :class:`FaultyBackend` wraps any backend and injects faults at the Backend
  interface: dropped connections (before the call, or after it took effect so
  that only the answer is lost, or half-way through a listing), 503-style
  transient errors, slow answers, and a disk that is full after N bytes.
- :class:`FaultProxy` sits on the network between a backend and its real
  server (a TCP proxy on loopback) and breaks real connections: resets
  mid-transfer, canned HTTP 503 answers, and delays. This exercises each
  backend's own error translation, not only the retry wrapper.

Both draw every decision from a ``random.Random`` seeded by the test, so a
failing run can be repeated (thread scheduling aside).
"""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator

from store.backend import Backend, ObjectInfo
from store.errors import BackendFull, TransientBackendError


class FaultyBackend(Backend):
    """Injects faults into calls to ``inner``; ``injected`` counts them by kind.

    Rates are probabilities per call. ``full_after`` makes every put that
    would bring the bytes stored through this wrapper above it raise
    BackendFull (permanent, never retried), without storing anything.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        seed: int,
        drop_rate: float = 0.0,
        error_rate: float = 0.0,
        slow_rate: float = 0.0,
        slow_delay: float = 0.02,
        full_after: int | None = None,
    ) -> None:
        self.inner = inner
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._drop_rate = drop_rate
        self._error_rate = error_rate
        self._slow_rate = slow_rate
        self._slow_delay = slow_delay
        self._full_after = full_after
        self._stored = 0
        self.injected: Counter[str] = Counter()

    @property
    def location(self) -> str:
        return f"faulty({self.inner.location})"

    def _roll(self) -> tuple[float, float, int]:
        with self._lock:
            return self._rng.random(), self._rng.random(), self._rng.randrange(1 << 30)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    def _before(self, what: str) -> bool:
        """Faults before the call; returns True when the answer is to be lost afterwards."""
        roll, slow, _ = self._roll()
        if slow < self._slow_rate:
            self._count("slow")
            time.sleep(self._slow_delay)
        if roll < self._error_rate:
            self._count("503")
            raise TransientBackendError(f"injected: 503 Service Unavailable on {what}")
        roll -= self._error_rate
        if roll < self._drop_rate / 2:
            self._count("drop-before")
            raise TransientBackendError(f"injected: connection reset before {what}")
        return roll < self._drop_rate

    def _lost(self, what: str) -> TransientBackendError:
        self._count("drop-after")
        return TransientBackendError(f"injected: connection reset after {what} (answer lost)")

    def put(self, key: str, data: bytes) -> None:
        if self._full_after is not None:
            with self._lock:
                if self._stored + len(data) > self._full_after:
                    self.injected["full"] += 1
                    raise BackendFull(f"injected: no space left for {key}")
                self._stored += len(data)
        lose = self._before(f"put {key}")
        self.inner.put(key, data)
        if lose:
            raise self._lost(f"put {key}")

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        lose = self._before(f"get {key}")
        data = self.inner.get(key, offset, length)
        if lose:
            raise self._lost(f"get {key}")
        return data

    def stat(self, key: str) -> ObjectInfo:
        lose = self._before(f"stat {key}")
        info = self.inner.stat(key)
        if lose:
            raise self._lost(f"stat {key}")
        return info

    def delete(self, key: str) -> None:
        lose = self._before(f"delete {key}")
        self.inner.delete(key)
        if lose:
            raise self._lost(f"delete {key}")

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        lose = self._before(f"list {prefix}")
        _, _, where = self._roll()
        items = list(self.inner.list(prefix))
        cut = where % (len(items) + 1) if lose else None
        for index, info in enumerate(items):
            if index == cut:
                raise self._lost(f"list {prefix} after {index} keys")
            yield info
        if cut is not None and cut == len(items):
            raise self._lost(f"list {prefix} at its end")

    def close(self) -> None:
        self.inner.close()


_503_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>\n"
)
_HTTP_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/xml\r\n"
    b"Retry-After: 0\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n%s"
) % (len(_503_BODY), _503_BODY)


class FaultProxy:
    """A TCP proxy on 127.0.0.1 to ``127.0.0.1:upstream_port`` that breaks connections.

    Faults, all drawn from a ``random.Random`` seeded by ``seed`` and the
    connection's number:

    - per connection: ``cut_rate`` resets it after a random number of bytes
      (up to ``cut_within``); ``slow_rate`` delays each of its chunks by
      ``slow_delay``;
    - per exchange (the client speaking after the server did, which for
      HTTP/1.1 is one request on a kept-alive connection): ``http_503_rate``
      answers with a 503 and closes, ``exchange_cut_rate`` resets the
      connection within the next ``cut_within`` bytes.

    ``counts`` records what happened. Use as a context manager.
    """

    def __init__(
        self,
        upstream_port: int,
        *,
        seed: int,
        cut_rate: float = 0.0,
        exchange_cut_rate: float = 0.0,
        cut_within: int = 1 << 20,
        http_503_rate: float = 0.0,
        slow_rate: float = 0.0,
        slow_delay: float = 0.005,
    ) -> None:
        self._upstream = upstream_port
        self._seed = seed
        self._cut_rate = cut_rate
        self._exchange_cut_rate = exchange_cut_rate
        self._cut_within = cut_within
        self._503_rate = http_503_rate
        self._slow_rate = slow_rate
        self._slow_delay = slow_delay
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._accepted = 0
        self.counts: Counter[str] = Counter()

    def __enter__(self) -> FaultProxy:
        thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = list(self._sockets)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for sock in sockets:
            # shutdown() wakes up a thread blocked on the socket; close alone does not.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def faults(self) -> int:
        """Connections reset plus 503 answers so far."""
        with self._lock:
            return self.counts["cut"] + self.counts["503"]

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    client.close()
                    return
                number = self._accepted
                self._accepted += 1
                self._sockets.add(client)
            thread = threading.Thread(
                target=self._serve, args=(client, number), name=f"fault-proxy-{number}", daemon=True
            )
            thread.start()
            with self._lock:
                self._threads.append(thread)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def _serve(self, client: socket.socket, number: int) -> None:
        rng = random.Random(f"{self._seed}/{number}")
        self._count("connections")
        upstream: socket.socket | None = None
        cut = True
        try:
            budget = rng.randrange(self._cut_within) if rng.random() < self._cut_rate else None
            slow = rng.random() < self._slow_rate
            upstream = socket.create_connection(("127.0.0.1", self._upstream), timeout=10)
            upstream.settimeout(None)
            with self._lock:
                self._sockets.add(upstream)
            cut = self._pump(client, upstream, rng, budget, slow)
        except (OSError, ValueError):
            pass  # a socket closed under us (by close() or the peer): the connection ends
        finally:
            # Injected faults end with a reset; normal ends close gracefully,
            # so data still in flight reaches the peer.
            finish = _reset if cut else _close
            if upstream is not None:
                finish(upstream)
                with self._lock:
                    self._sockets.discard(upstream)
            finish(client)
            with self._lock:
                self._sockets.discard(client)

    def _pump(
        self,
        client: socket.socket,
        upstream: socket.socket,
        rng: random.Random,
        budget: int | None,
        slow: bool,
    ) -> bool:
        """Forward both ways until both sides closed; True when a fault ended it."""
        peers = {client: upstream, upstream: client}
        open_sources = [client, upstream]
        moved = 0
        client_spoke_last: bool | None = None
        while open_sources:
            readable, _, _ = select.select(open_sources, [], [], 60)
            if not readable:
                return True  # idle for a minute: give up on this connection
            for source in readable:
                chunk = source.recv(65536)
                if not chunk:
                    # Pass the half-close on and keep the other direction going.
                    open_sources.remove(source)
                    try:
                        peers[source].shutdown(socket.SHUT_WR)
                    except OSError:
                        return False
                    continue
                from_client = source is client
                if from_client and client_spoke_last is not True:
                    # A new exchange (request) begins.
                    roll = rng.random()
                    if roll < self._503_rate:
                        self._count("503")
                        _answer_503(client)
                        return False
                    if roll < self._503_rate + self._exchange_cut_rate and budget is None:
                        budget = moved + rng.randrange(self._cut_within)
                client_spoke_last = from_client
                if budget is not None and moved + len(chunk) > budget:
                    # Forward part of the chunk, then reset both sides.
                    peers[source].sendall(chunk[: max(0, budget - moved)])
                    self._count("cut")
                    return True
                moved += len(chunk)
                if slow:
                    time.sleep(self._slow_delay)
                peers[source].sendall(chunk)
        return False


def _answer_503(client: socket.socket) -> None:
    """Answer the request being sent with a 503, then close gracefully.

    The rest of the request is read and dropped, so the client gets to read
    the 503 rather than a reset.
    """
    client.settimeout(10)
    client.sendall(_HTTP_503)
    client.shutdown(socket.SHUT_WR)
    while client.recv(65536):
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a dropped connection looks to the peer."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def write_and_verify_through_faults(
    faulted: Backend,
    direct: Backend,
    *,
    seed: int,
    count: int = 48,
    threads: int = 4,
    large: int = 3 * 1024 * 1024,
) -> None:
    """Store, delete, list and read objects through ``faulted``, then check ``direct``.

    ``faulted`` is the backend under test behind faults and retry; ``direct``
    reaches the same storage without faults. Afterwards the storage must hold
    exactly the objects that should survive, byte for byte, with nothing half
    written: a complete, verified result. Raises AssertionError otherwise.
    """
    rng = random.Random(seed)
    expected = {
        f"data/{i % 8:02x}/{seed:x}-{i:04d}": rng.randbytes(rng.randrange(0, 40_000))
        for i in range(count)
    }
    expected[f"data/ff/{seed:x}-large"] = rng.randbytes(large)
    keys = list(expected)
    failures: list[BaseException] = []

    def writer(part: int) -> None:
        try:
            for key in keys[part::threads]:
                faulted.put(key, expected[key])
        except BaseException as exc:  # reported below
            failures.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not failures, failures
    for key in keys[::5]:
        faulted.delete(key)
        del expected[key]
    assert {info.key: info.size for info in faulted.list("data/")} == {
        key: len(data) for key, data in expected.items()
    }
    for key, data in expected.items():
        assert faulted.get(key) == data, key
        assert faulted.get(key, len(data) // 3, 1000) == data[len(data) // 3 :][:1000]
    # The storage itself, without faults: complete, identical, nothing extra.
    assert {info.key: info.size for info in direct.list("")} == {
        key: len(data) for key, data in expected.items()
    }
    for key, data in expected.items():
        assert direct.get(key) == data, key
