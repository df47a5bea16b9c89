"""HTTPS server on loopback: HTTP/1.1 keep-alive, streaming bodies, dropped connections.

Built on `http.server.ThreadingHTTPServer` with `ssl`. The TLS handshake runs in the
connection's worker thread (not in the accept loop), so a slow client never blocks others.
Each response is written by `_Handler._send`, which honours `Response.drop` for fault
injection: "before" closes the connection without answering, "mid" sends the headers and
half of the body then closes, "after" behaves like "before" but is used after a write was
committed.

Thread-safety: one thread per connection; the application object must be thread-safe.
`on_connection_end` runs in the connection's thread when it ends (per-thread cleanup).
`HttpsServer.stop()` closes the listening socket and every open connection, then joins.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .httpcore import BodyReader, Request, Response

App = Callable[[Request], Response]

# How long an idle keep-alive connection may wait for its next request.
IDLE_TIMEOUT = 75.0
# A request body left unread by a handler is drained up to this size to keep the connection.
DRAIN_LIMIT = 8 << 20


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        addr: tuple[str, int],
        ctx: ssl.SSLContext,
        app: App,
        on_connection_end: Callable[[], None] | None = None,
    ) -> None:
        self.ssl_context = ctx
        self.app = app
        self.on_connection_end = on_connection_end
        self.base_url = ""
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw: socket.socket = request
        raw.settimeout(30)
        try:
            tls = self.ssl_context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            return
        with self._conns_lock:
            self._conns.add(tls)
        try:
            tls.settimeout(IDLE_TIMEOUT)
            _Handler(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self._conns_lock:
                self._conns.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()
            if self.on_connection_end is not None:
                self.on_connection_end()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients vanishing mid-request are normal (fault tests do it on purpose).
        return

    def close_all_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _dispatch(self) -> None:
        length_header = self.headers.get("Content-Length")
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        try:
            length = int(length_header) if length_header is not None else None
        except ValueError:
            self.send_error(400, "Bad Content-Length")
            return
        body = BodyReader(self.rfile, length, chunked)  # type: ignore[arg-type]
        request = Request(
            method=self.command,
            target=self.path,
            headers=self.headers,
            body=body,
            base_url=self.server.base_url,
            client=str(self.client_address[0]),
        )
        response = self.server.app(request)
        if response.drop in ("before", "after"):
            if response.on_sent:
                response.on_sent(0)
            self._cut()
            return
        if not body.done and not body.drain(DRAIN_LIMIT):
            self.close_connection = True
        self._send(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _cut(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        length = response.content_length()
        self.send_response(response.status)
        has_type = False
        for key, value in response.headers:
            if key.lower() == "content-length":
                continue
            has_type = has_type or key.lower() == "content-type"
            self.send_header(key, value)
        if length and not has_type:
            self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD" or response.status in (204, 304):
            if response.on_sent:
                response.on_sent(0)
            return
        limit = length // 2 if response.drop == "mid" else None
        sent = 0
        try:
            for chunk in response.chunks():
                if limit is not None and sent + len(chunk) >= limit:
                    self.wfile.write(chunk[: max(0, limit - sent)])
                    sent = limit
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
        finally:
            if response.on_sent:
                response.on_sent(sent)
        if limit is not None:
            self._cut()


class HttpsServer:
    """Serves `app` over HTTPS on `host:port` (port 0 picks a free one) in a thread."""

    def __init__(
        self,
        app: App,
        cert_file: str,
        key_file: str,
        host: str = "127.0.0.1",
        port: int = 0,
        on_connection_end: Callable[[], None] | None = None,
    ) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert_file, key_file)
        self._server = _Server((host, port), ctx, app, on_connection_end)
        self.host = host
        self.port = int(self._server.server_address[1])
        self.base_url = f"https://{host}:{self.port}"
        self._server.base_url = self.base_url
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="graphsim-https",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, cut open connections and wait for the serving thread."""
        if self._thread is None:
            return
        self._server.shutdown()
        self._server.close_all_connections()
        self._server.server_close()
        self._thread.join(timeout)
        self._thread = None
        # Give worker threads a moment to notice their sockets are gone.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._server._conns_lock:
                if not self._server._conns:
                    break
            time.sleep(0.01)
