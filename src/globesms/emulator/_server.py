"""HTTP/1.1 plumbing: a threaded loopback server that hands parsed requests to the backend.

Nothing here knows the API; it parses requests, reads bodies on demand (so a
scripted drop can happen before the body is read), writes answers with a
correct ``Content-Length`` for keep-alive, and never writes to stdout or
stderr: request lines carry phone numbers and message text.
"""

from __future__ import annotations

import contextlib
import io
import socket
import ssl
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol, cast

from ._gateway import GatewayError, Response, default_code

MAX_REQUEST_LINE = 1024 * 1024
"""Longest accepted request line (method, target with its query, version), in bytes."""
MAX_BODY = 1024 * 1024
"""Largest accepted request body, in bytes."""
IDLE_TIMEOUT_S = 60.0
"""An idle keep-alive connection is closed after this long."""
_HANDSHAKE_TIMEOUT_S = 10.0
_LINGER_TIMEOUT_S = 0.5
_LINGER_MAX_BYTES = 4 * 1024 * 1024


class Exchange:
    """One request as parsed from the wire; the body is read only when asked for."""

    def __init__(
        self, method: str, target: str, headers: Message, rfile: io.BufferedIOBase
    ) -> None:
        self.method = method
        self.target = target
        path, _, raw_query = target.partition("?")
        self.path = path
        self.raw_query = raw_query
        self.headers = headers
        self._rfile = rfile
        self._body: bytes | None = None
        self.must_close = False
        """Set when the connection cannot be reused (body left unread or unreadable)."""

    @property
    def body_read(self) -> bool:
        return self._body is not None

    def read_body(self) -> bytes:
        """Read the body (``Content-Length`` or chunked); raise ``GatewayError`` when unusable."""
        if self._body is not None:
            return self._body
        encoding = self.headers.get("transfer-encoding")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                self.must_close = True
                raise GatewayError(501, default_code(501), "Only chunked transfer coding is known.")
            self._body = self._read_chunked()
            return self._body
        length_text = self.headers.get("content-length")
        length = 0
        if length_text is not None:
            try:
                length = int(length_text.strip())
            except ValueError:
                length = -1
            if length < 0:
                self.must_close = True
                raise GatewayError(400, default_code(400), "Content-Length is not a valid length.")
        if length > MAX_BODY:
            self.must_close = True
            raise GatewayError(413, default_code(413), f"The body exceeds {MAX_BODY} bytes.")
        data = self._rfile.read(length) if length else b""
        if len(data) < length:
            self.must_close = True
            raise ConnectionError("the client closed the connection mid-body")
        self._body = data
        return data

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self._rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.must_close = True
                raise GatewayError(400, default_code(400), "Malformed chunked body.") from None
            if size == 0:
                while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                self.must_close = True
                raise GatewayError(413, default_code(413), f"The body exceeds {MAX_BODY} bytes.")
            chunk = self._rfile.read(size)
            if len(chunk) < size:
                self.must_close = True
                raise ConnectionError("the client closed the connection mid-body")
            chunks.append(chunk)
            self._rfile.readline(3)


class Application(Protocol):
    """What the server calls for each request."""

    def handle(self, exchange: Exchange) -> Response | None:
        """Answer ``exchange``, or return None to drop the connection without an answer."""

    def protocol_error(
        self,
        status: int,
        message: str,
        method: str | None,
        target: str | None,
        headers: Message | None,
    ) -> Response:
        """Answer (and record) a request too malformed to reach the API."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "globesms-emulator"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S

    def _emulator_server(self) -> LoopbackServer:
        return cast(LoopbackServer, self.server)

    def setup(self) -> None:
        self._broken = False
        self._emulator_server().track(self.request)
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(_HANDSHAKE_TIMEOUT_S)
            try:
                self.request.do_handshake()
            except (OSError, ValueError):
                self._broken = True
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
            self._linger()
        except OSError:
            pass
        finally:
            self._emulator_server().untrack(self.request)

    def _linger(self) -> None:
        """Half-close, then drain what the client still sends, before the socket is closed.

        Closing with unread input makes the kernel send a reset, which can destroy an
        answer (a 414, a 413) before the client has read it.
        """
        sock = self.request
        socket.socket.shutdown(sock, socket.SHUT_WR)
        sock.settimeout(_LINGER_TIMEOUT_S)
        drained = 0
        while drained < _LINGER_MAX_BYTES:
            chunk = socket.socket.recv(sock, 65536)
            if not chunk:
                return
            drained += len(chunk)

    def handle(self) -> None:
        if self._broken:
            return
        try:
            super().handle()
        except (OSError, ValueError):
            # The peer went away or the emulator closed the socket under us.
            self.close_connection = True

    def handle_one_request(self) -> None:
        # Forget the previous request on this connection, so that an error raised while
        # parsing this one is not recorded with the last one's target and headers.
        for stale in ("command", "path", "headers"):
            vars(self).pop(stale, None)
        try:
            line = self.rfile.readline(MAX_REQUEST_LINE + 1)
        except (OSError, ValueError):
            self.close_connection = True
            return
        if not line:
            self.close_connection = True
            return
        if len(line) > MAX_REQUEST_LINE:
            self.requestline, self.request_version, self.command = "", "HTTP/1.1", ""
            self.send_error(414, f"The request line exceeds {MAX_REQUEST_LINE} bytes.")
            return
        self.raw_requestline = line
        if not self.parse_request():
            return
        exchange = Exchange(self.command, self.path, self.headers, self.rfile)
        if self.command not in ("GET", "POST", "PUT", "DELETE"):
            exchange.must_close = True
        response = self._emulator_server().app.handle(exchange)
        if response is None:
            self.close_connection = True
            return
        if not exchange.body_read and not exchange.must_close:
            try:
                exchange.read_body()
            except (GatewayError, ConnectionError):
                exchange.must_close = True
        if exchange.must_close:
            self.close_connection = True
        if response.stream is not None:
            self._write_stream(response)
            return
        self._write(response)

    def _write_stream(self, response: Response) -> None:
        """Send the head, then each chunk as it comes; the connection closes at the end."""
        stream = response.stream
        assert stream is not None
        self.close_connection = True
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            for name, value in response.extra_headers:
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in stream:
                self.wfile.write(chunk)
                self.wfile.flush()
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        if response.request_id:
            self.send_header("x-acs-request-id", response.request_id)
        for name, value in response.extra_headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Head and body leave in one write: two small writes meet the client's delayed ACK
        # (Nagle) and stall every answer by ~40 ms on a reused connection.
        body = response.body if self.command != "HEAD" else b""
        self.end_headers_with(body)
        self.wfile.flush()

    def end_headers_with(self, body: bytes) -> None:
        """``end_headers`` with ``body`` appended to the same buffer, sent in one write."""
        buffer: list[bytes] = self._headers_buffer  # type: ignore[attr-defined]  # set by send_response
        buffer.append(b"\r\n" + body)
        self.flush_headers()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        # parse_request leaves HTTP/0.9 (no status line, no headers) on an unreadable
        # request line; answer such a request as HTTP/1.1 all the same.
        self.request_version = self.protocol_version
        status = int(code)  # parse_request passes HTTPStatus members
        response = self._emulator_server().app.protocol_error(
            status,
            message or default_code(status),
            getattr(self, "command", None) or None,
            getattr(self, "path", None),
            getattr(self, "headers", None),
        )
        with contextlib.suppress(OSError):
            self._write(response)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        """Say nothing: request lines carry phone numbers and message text."""


class LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP(S) server (127.0.0.1 unless told otherwise) tracking its connections."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False
    request_queue_size = 64

    def __init__(
        self,
        app: Application,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = self.socket.accept()
        if self._ssl_context is not None:
            sock = self._ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections[sock] = threading.current_thread()

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)

    def close_connections(self, join_timeout: float = 2.0) -> None:
        """Cut every open connection and wait (briefly) for their threads to end."""
        with self._lock:
            connections = list(self._connections.items())
        for sock, _thread in connections:
            # The plain-socket shutdown, also for TLS sockets: another thread may be
            # inside the SSL object, which must not be torn down from here.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        for _sock, thread in connections:
            if thread is not threading.current_thread():
                thread.join(join_timeout)

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay silent (the default prints a traceback to stderr)."""
