"""A small AJP13 container on a loopback port for mod_jk's unit tests.

Each connection runs in a thread: CPings get CPongs (unless told otherwise), each Forward
Request is handed with an Exchange to the test's ``handler``, which reads the body and
answers as it likes (or misbehaves: closes, sleeps, answers twice). The container counts
connections, requests and CPings so tests can see pooling and probing happen.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable

from modules.mod_jk.ajp13 import (
    MAGIC_TO_CONTAINER,
    CPing,
    ForwardRequest,
    PacketReader,
    SendHeaders,
    decode_body_packet,
    decode_server_message,
    encode_cpong,
    encode_end_response,
    encode_get_body_chunk,
    encode_send_body_chunk,
    encode_send_headers,
)


class ConnectionGone(Exception):
    """The web server closed the connection."""


class Exchange:
    """One Forward Request on a connection, and the means to answer it."""

    def __init__(self, container: FakeContainer, sock: socket.socket, reader: PacketReader,
                 request: ForwardRequest) -> None:
        self.container = container
        self.sock = sock
        self.reader = reader
        self.request = request
        self.closed = False

    def packet(self) -> bytes:
        while (payload := self.reader.next_packet()) is None:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionGone()
            self.reader.feed(data)
        return payload

    def body(self, ask: int = 8186) -> bytes:
        """The whole request body: the first packet if it was pushed, then Get Body Chunks."""
        length = self.request.content_length
        if length == 0:
            return b""
        parts = []
        if length is not None:
            parts.append(decode_body_packet(self.packet()))
            if sum(map(len, parts)) >= length:
                return b"".join(parts)
        while True:
            self.send(encode_get_body_chunk(ask))
            data = decode_body_packet(self.packet())
            if not data:
                return b"".join(parts)
            parts.append(data)
            if length is not None and sum(map(len, parts)) >= length:
                return b"".join(parts)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def headers(self, status: int = 200, headers: list[tuple[str, str]] | None = None,
                reason: str = "") -> None:
        self.send(encode_send_headers(SendHeaders(status, reason or "OK", headers or [])))

    def chunk(self, data: bytes) -> None:
        for i in range(0, max(len(data), 1), 8184):
            self.send(encode_send_body_chunk(data[i : i + 8184]))

    def end(self, reuse: bool = True) -> None:
        self.send(encode_end_response(reuse))
        if not reuse:
            self.close()

    def respond(self, status: int = 200, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
                reuse: bool = True) -> None:
        """A whole response: headers, the body in full chunks, End Response."""
        self.headers(status, headers)
        if body:
            self.chunk(body)
        self.end(reuse)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def echo(exchange: Exchange) -> None:
    """Describe the request: ``key=value`` lines, body length and SHA-256 included."""
    body = exchange.body()
    req = exchange.request
    lines = [
        f"method={req.method}",
        f"uri={req.req_uri}",
        f"query={req.query_string}",
        f"protocol={req.protocol}",
        f"remote_addr={req.remote_addr}",
        f"server_name={req.server_name}",
        f"server_port={req.server_port}",
        f"secret={req.secret}",
        f"route={req.route}",
        *(f"header.{name.lower()}={value}" for name, value in req.headers),
        *(f"attr.{name}={value}" for name, value in req.req_attributes),
        f"body.bytes={len(body)}",
        f"body.sha256={hashlib.sha256(body).hexdigest()}",
    ]
    exchange.respond(200, ("\n".join(lines) + "\n").encode(), [("Content-Type", "text/plain")])


class FakeContainer:
    """An AJP13 container on 127.0.0.1; ``handler(exchange)`` answers each request."""

    def __init__(self, handler: Callable[[Exchange], None] = echo, *, answer_cping: bool = True) -> None:
        self.handler = handler
        self.answer_cping = answer_cping
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.requests: list[ForwardRequest] = []
        self.cpings = 0
        self.errors: list[BaseException] = []
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._socks.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        reader = PacketReader(MAGIC_TO_CONTAINER, 65536)
        exchange: Exchange | None = None
        try:
            while exchange is None or not exchange.closed:
                probe = Exchange(self, sock, reader, ForwardRequest())
                msg = decode_server_message(probe.packet())
                if isinstance(msg, CPing):
                    with self._lock:
                        self.cpings += 1
                    if self.answer_cping:
                        sock.sendall(encode_cpong())
                    continue
                with self._lock:
                    self.requests.append(msg)
                exchange = Exchange(self, sock, reader, msg)
                self.handler(exchange)
        except (ConnectionGone, OSError):
            pass
        except BaseException as e:  # noqa: BLE001 - shown by the test that reads .errors
            self.errors.append(e)
        finally:
            sock.close()

    def settle(self, seconds: float = 0.3) -> None:
        """Give the connection threads time to take in what was sent (busy test machines)."""
        time.sleep(seconds)

    def drop_connections(self) -> None:
        """Close every accepted connection, as a restarting container does."""
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.drop_connections()

    def __enter__(self) -> FakeContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
