"""A client that sends requests byte for byte as written (no normalising of the target, so
traversal attempts reach the server as sent) and reads responses framed by Content-Length,
chunked encoding or the end of the connection."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass
class Response:
    """One parsed response; header names are lowercase, repeated ones joined with ', '."""

    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """One connection to 127.0.0.1:`port`, optionally from another loopback source address."""

    def __init__(self, port: int, source_ip: str | None = None, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout, source_address=(source_ip, 0) if source_ip else None
        )
        self.buf = b""

    def request(self, target: bytes | str, method: str = "GET", headers: dict[str, str] | None = None,
                host: str = "localhost") -> Response:
        """Send one request and read its response (a HEAD response has no body)."""
        if isinstance(target, str):
            target = target.encode("latin-1")
        lines = [method.encode() + b" " + target + b" HTTP/1.1", f"Host: {host}".encode()]
        lines += [f"{k}: {v}".encode("latin-1") for k, v in (headers or {}).items()]
        self.sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        return self.read_response(head_only=method == "HEAD")

    def read_response(self, head_only: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *fields = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for field in fields:
            name, _, value = field.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        status = int(status_line.split()[1])
        if head_only or status in (204, 304) or status < 200:
            body = b""
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._chunked()
        else:
            while self._fill(required=False):
                pass
            body, self.buf = self.buf, b""
        return Response(status, headers, body)

    def _fill(self, required: bool = True) -> bool:
        data = self.sock.recv(65536)
        if not data and required:
            raise ConnectionError("the server closed the connection")
        self.buf += data
        return bool(data)

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            size_line, self.buf = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            chunk = self._take(size + 2)
            if size == 0:
                return body
            body += chunk[:-2]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fetch(port: int, target: bytes | str, method: str = "GET", headers: dict[str, str] | None = None,
          host: str = "localhost", source_ip: str | None = None) -> Response:
    """One request on a connection of its own."""
    with Client(port, source_ip) as client:
        return client.request(target, method, headers, host)
