"""One call of a WSGI application and its response (PEP 3333's server side).

start_response() only records the status and headers; they go out with the first
non-empty body bytes, or when the application's iterable ends, so an application can
still change its mind (exc_info) until then. Content-Length, when the application gives
one, is honoured: bytes beyond it are dropped and a short body closes the connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from modules.mod_wsgi.file_wrapper import FileWrapper
from modules.mod_wsgi.input import ClientGone
from modules.mod_wsgi.native import from_wsgi
from pyhttpd.log import log_rerror

if TYPE_CHECKING:
    from pyhttpd.request import Request

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

# PEP 3333: "applications and middleware are forbidden from using HTTP/1.1 hop-by-hop
# features or headers"; the server frames the response itself.
HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding", "upgrade")
)
_STATUS = re.compile(r"[1-9][0-9][0-9] [^\r\n\0]*\Z")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Header names already checked, with their lower case; bounded, since applications may
# make names up.
_NAMES: dict[str, str] = {}
_NAMES_MAX = 1024
# Statuses whose responses never have a body, so no Content-Length is added.
_NO_BODY = (204, 304)
# Statuses and header lists already checked, by value (an application passes the same few
# again and again): status -> its response form; headers -> (checked list, has length).
_STATUSES: dict[str, tuple[str, int]] = {}
_HEADER_LISTS: dict[tuple[tuple[str, str], ...], tuple[list[tuple[str, str]], bool]] = {}
_CHECKED_MAX = 256


def _check_name(name: str) -> str:
    """The lower case of a valid response header name; ValueError for others."""
    if not _TOKEN.match(name):
        raise ValueError(f"invalid header name {name!r}")
    lname = name.lower()
    if lname in HOP_BY_HOP:
        raise ValueError(f"hop-by-hop header {name!r} is not allowed (PEP 3333)")
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = lname
    return lname


def _check_headers(headers: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], bool]:
    """An application's response headers checked (ValueError, TypeError), their values as
    response strings, and whether Content-Length is among them."""
    checked = []
    has_length = False
    for header in headers:
        if not isinstance(header, tuple) or len(header) != 2:
            raise TypeError(f"header {header!r} is not a (name, value) tuple")
        name, value = header
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header {header!r} must have str name and value")
        lname = _NAMES.get(name) or _check_name(name)
        if "\n" in value or "\r" in value or "\0" in value:
            raise ValueError(f"header {name!r} has a line break or NUL in its value")
        if lname == "content-length":
            if not value.isdigit():
                raise ValueError(f"invalid Content-Length {value!r}")
            has_length = True
        checked.append((name, value if value.isascii() else from_wsgi(value)))
    return checked, has_length


class WsgiResponse:
    """The server side of one application call for request `r`."""

    # Until start_response and the first write say otherwise.
    status: str | None = None
    code = 0  # the status as a number
    headers_sent = False
    content_length: int | None = None
    written = 0
    overrun = False
    has_length = False

    def __init__(self, r: Request) -> None:
        self.r = r
        self.headers: list[tuple[str, str]] = []

    # -- the callables the application gets -------------------------------------------

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333's start_response: check and record the status and headers."""
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called again without exc_info")
        checked_status = _STATUSES.get(status) if type(status) is str else None
        if checked_status is None:
            if not isinstance(status, str) or not _STATUS.match(status):
                raise ValueError(f"status {status!r} is not a str of the form '200 OK'")
            checked_status = (from_wsgi(status), int(status[:3]))
            if len(_STATUSES) < _CHECKED_MAX:
                _STATUSES[status] = checked_status
        if not isinstance(headers, list):
            raise TypeError(f"headers must be a list, not {type(headers).__name__}")
        key: tuple[tuple[str, str], ...] | None = tuple(headers)
        try:
            known = _HEADER_LISTS.get(key)  # type: ignore[arg-type]
        except TypeError:  # an entry that cannot be hashed: the checks below name it
            key = known = None
        if known is None:
            known = _check_headers(headers)
            if key is not None and len(_HEADER_LISTS) < _CHECKED_MAX:
                _HEADER_LISTS[key] = known
        self.status, self.code = checked_status
        self.headers = list(known[0])
        self.has_length = known[1]
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's write(): send body bytes now (the headers first)."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"response body must be bytes, not {type(data).__name__}")
        if not data:
            return
        self._start()
        if self.content_length is not None and len(data) > self.content_length - self.written:
            if not self.overrun:
                self.overrun = True
                log_rerror(self.r, "error", "wsgi", f"response is longer than its Content-Length {self.content_length}; the rest is dropped")
            data = data[: self.content_length - self.written]
            if not data:
                return
        self.written += len(data)
        try:
            self.r.write(bytes(data))
        except (OSError, ValueError) as e:
            raise ClientGone(str(e)) from e

    # -- running the application ------------------------------------------------------

    def run(self, app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> None:
        """Call the application and send everything it returns; close() its iterable."""
        result = app(environ, self.start_response)
        try:
            if isinstance(result, FileWrapper) and self._sendfile(result):
                return
            if isinstance(result, list | tuple) and len(result) == 1 and not self.headers_sent:
                self._set_length(result[0])
            for data in result:
                self.write(data)
            self.finish()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def finish(self) -> None:
        """The application is done: send headers not sent yet, check Content-Length."""
        if self.status is None:
            raise RuntimeError("the application returned without calling start_response()")
        if not self.headers_sent:
            if not self.r.header_only:
                self._set_length(b"")
            self._start()
            try:
                self.r.send_headers()
            except (OSError, ValueError) as e:
                raise ClientGone(str(e)) from e
        if self.content_length is not None and self.written < self.content_length and not self.r.header_only:
            log_rerror(self.r, "error", "wsgi", f"response ended after {self.written} of its Content-Length {self.content_length} bytes")
            self.r.keepalive = False
            self.r.connection.aborted = True

    def _set_length(self, body: Any) -> None:
        """Add Content-Length for a body known in full, so the connection stays reusable
        without chunked framing."""
        if self.status is None or not isinstance(body, bytes):
            return
        code = self.code
        if code in _NO_BODY or code < 200 or self.has_length:
            return
        self.headers.append(("Content-Length", str(len(body))))
        self.has_length = True

    def _start(self) -> None:
        """Give the request the recorded status and headers (they go out with its first write)."""
        if self.headers_sent:
            return
        self.headers_sent = True
        r = self.r
        assert self.status is not None
        r.status = self.code
        r.status_line = self.status
        for name, value in self.headers:
            lname = _NAMES.get(name) or name.lower()
            if lname == "content-type":
                r.content_type = value
                continue
            if lname == "content-length":
                self.content_length = int(value)
            r.headers_out.add(name, value)

    def _sendfile(self, wrapper: FileWrapper) -> bool:
        """Send a wrapped regular file with the request's sendfile; False to iterate it."""
        span = wrapper.sendfile_span()
        if span is None or self.status is None:
            return False
        offset, size = span
        if not self.has_length:
            self.headers.append(("Content-Length", str(size)))
            self.has_length = True
        self._start()
        assert self.content_length is not None
        count = min(size, self.content_length)
        self.written = count
        try:
            self.r.sendfile(wrapper.filelike, offset, count)
        except (OSError, ValueError) as e:
            raise ClientGone(str(e)) from e
        self.finish()
        return True
