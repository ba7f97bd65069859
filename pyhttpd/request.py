"""Connections and requests (httpd's conn_rec and request_rec), the objects hooks receive.

A request does not know which protocol brought it: HTTP/1.1 and the AJP13 listener both
build a Request and give it a Transport that reads the body and writes the response in
their own framing, so every module serves both.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from pyhttpd.headers import Headers

if TYPE_CHECKING:
    from pyhttpd.config import Config
    from pyhttpd.server import Server


class Transport(Protocol):
    """What a protocol provides to a request for its body and its response."""

    def read_body(self, size: int) -> bytes:
        """Up to `size` bytes of the request body; b"" at its end."""
        ...

    def send_headers(self, r: Request) -> None:
        """Send the status line and `r.headers_out` (and `r.err_headers_out`)."""
        ...

    def write(self, data: bytes) -> None:
        """Send response body bytes (headers have been sent)."""
        ...

    def sendfile(self, file: BinaryIO, offset: int, count: int) -> None:
        """Send `count` bytes of an open file from `offset` (headers have been sent)."""
        ...

    def flush(self) -> None:
        """Push out anything buffered."""
        ...


class Connection:
    """One client connection (conn_rec)."""

    __slots__ = (
        "remote_ip", "remote_port", "local_ip", "local_port", "protocol", "is_ssl",
        "keepalives", "aborted", "notes", "slot", "id",
    )

    def __init__(
        self,
        remote_ip: str,
        remote_port: int,
        local_ip: str,
        local_port: int,
        protocol: str = "http",
        slot: Any = None,
    ) -> None:
        self.remote_ip = remote_ip
        self.remote_port = remote_port
        self.local_ip = local_ip
        self.local_port = local_port
        self.protocol = protocol  # the Listen protocol: "http" or "ajp13"
        self.is_ssl = False
        self.keepalives = 0  # requests served on this connection so far
        self.aborted = False
        self.notes: dict[str, Any] = {}
        self.slot = slot  # the scoreboard worker slot serving it, if any
        self.id = 0


class Request:
    """One request (request_rec). Handlers read `headers_in`, set `status`, `content_type`
    and `headers_out`, then call write()/sendfile(); headers go out on the first write."""

    # Fields most requests leave as they are start out as these class attributes: a request
    # is built for every request, and what __init__ does not store costs nothing.
    # request line
    the_request = ""
    method = "GET"
    unparsed_uri = "/"
    uri = "/"  # decoded, normalised path
    args: str | None = None  # query string
    protocol = "HTTP/1.1"
    proto_num = 1001
    hostname: str | None = None
    header_only = False  # HEAD
    # response
    status = 200
    status_line: str | None = None
    content_type: str | None = None
    handler: str | None = None
    bytes_sent = 0
    headers_sent = False
    keepalive = True  # the protocol may clear it (Connection: close, errors)
    # mapping
    filename: str | None = None
    canonical_filename: str | None = None
    path_info = ""
    finfo: Any = None  # os.stat_result of filename, when it exists
    # auth
    user: str | None = None
    ap_auth_type: str | None = None
    # body
    remaining: int | None = None  # Content-Length, None when chunked or unknown
    read_length = 0
    body_limit = 0  # LimitRequestBody in force (0: none)
    is_https = False
    scheme = "http"
    prev: Request | None = None  # the request an internal redirect came from

    def __init__(self, config: Config, connection: Connection, transport: Transport) -> None:
        self.config = config
        self.connection = connection
        self.transport = transport
        self.server: Server = config.main_server
        self.request_time = time.time()
        self.start = time.perf_counter()
        # headers and tables
        self.headers_in = Headers()
        self.headers_out = Headers()
        self.err_headers_out = Headers()  # kept on error responses too
        self.subprocess_env: dict[str, str] = {}
        self.notes: dict[str, Any] = {}
        # config
        self.per_dir_config: dict[str, Any] = {}
        self.request_config: dict[str, Any] = {}
        if connection.is_ssl:
            self.is_https = True
            self.scheme = "https"

    # -- config --------------------------------------------------------------------------

    def dir_config(self, module_name: str) -> Any:
        """The merged per-directory config of a module for this request."""
        return self.per_dir_config.get(module_name)

    def server_config(self, module_name: str) -> Any:
        """The per-server config of a module for this request's (virtual) server."""
        return self.server.module_config.get(module_name)

    # -- body ----------------------------------------------------------------------------

    def read(self, size: int = -1) -> bytes:
        """Read the request body (all of it when size < 0); b"" at its end.

        Raises RequestEntityTooLarge when LimitRequestBody is exceeded.
        """
        if size < 0:
            chunks = []
            while True:
                chunk = self.read(65536)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        if size == 0:
            return b""
        data = self.transport.read_body(size)
        self.read_length += len(data)
        if self.body_limit and self.read_length > self.body_limit:
            raise RequestEntityTooLarge(self.body_limit)
        return data

    def discard_body(self) -> None:
        """Read and drop what is left of the body, so the connection can be reused."""
        while self.read(65536):
            pass

    # -- response ------------------------------------------------------------------------

    def send_headers(self) -> None:
        """Send the status and headers now (they are sent by the first write otherwise)."""
        if not self.headers_sent:
            self.headers_sent = True
            self.transport.send_headers(self)

    def write(self, data: bytes) -> None:
        """Send body bytes; nothing is sent for HEAD requests."""
        if not self.headers_sent:  # send_headers(), without a second call
            self.headers_sent = True
            self.transport.send_headers(self)
        if data and not self.header_only:
            self.transport.write(data)
            self.bytes_sent += len(data)

    def sendfile(self, file: BinaryIO, offset: int, count: int) -> None:
        """Send part of an open file (os.sendfile where the protocol allows)."""
        if not self.headers_sent:  # send_headers(), without a second call
            self.headers_sent = True
            self.transport.send_headers(self)
        if count and not self.header_only:
            self.transport.sendfile(file, offset, count)
            self.bytes_sent += count

    def flush(self) -> None:
        self.send_headers()
        self.transport.flush()

    def __repr__(self) -> str:
        return f"<request {self.method} {self.unparsed_uri} {self.status}>"


class RequestEntityTooLarge(Exception):
    """The body exceeds LimitRequestBody; the request ends with 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds LimitRequestBody {limit}")
        self.limit = limit


class HTTPError(Exception):
    """Raised by a module to end the request with an error status (like returning it)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message or str(status))
        self.status = status
        self.message = message
