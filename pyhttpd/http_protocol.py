"""HTTP/1.0 and HTTP/1.1 connections (httpd's protocol.c, http_protocol.c, http_filters.c
and mod_reqtimeout).

An HttpConnection serves one accepted connection: it reads requests with llhttp
(httptools, strict mode), builds a Request for each and runs it through the hooks, and is
the Request's Transport for the body and the response. Requests already received are
served in order (pipelining); the connection stays open as httpd's ap_set_keepalive
decides.

Requests the server refuses, with httpd's statuses:

- 414 when the request line exceeds LimitRequestLine;
- 400 when a header field exceeds LimitRequestFieldSize or there are more than
  LimitRequestFields (httpd answers 400 "Size of a request header field exceeds server
  limit", not 431, and so does pyhttpd);
- 400 for anything llhttp refuses: malformed lines, obs-fold, NUL/CR/LF in values,
  Content-Length with Transfer-Encoding, repeated Content-Length, a bad chunk size; also
  for a Transfer-Encoding other than exactly "chunked" or in an HTTP/1.0 request,
  several Host headers, a malformed Host and an HTTP/1.1 request without Host;
- 501 for a method llhttp does not know, 505 for an HTTP version other than 1.0/1.1,
  417 for an Expect other than 100-continue;
- 408 when the headers (or the body) do not arrive within RequestReadTimeout;
- 400 or 404 for paths pyhttpd.uri refuses (traversal above /, encoded '/' or NUL).

Every refusal closes the connection after the answer (with a lingering close, so the
client reads the answer instead of a reset), and the access log sees it.

Memory per connection is bounded: bytes are read only when a request needs them, and the
bytes received before a request's headers are complete are capped; llhttp enforces no
size limits itself.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from functools import lru_cache
from typing import TYPE_CHECKING, Any, BinaryIO

import httptools

from pyhttpd.headers import Headers
from pyhttpd.http_request import process_request, reason_phrase, send_error_response
from pyhttpd.log import log_error, log_rerror
from pyhttpd.module import OK
from pyhttpd.request import Connection, HTTPError, Request
from pyhttpd.server import select_server
from pyhttpd.server_tokens import server_banner
from pyhttpd.socket_direct import os_socket, send_at_once
from pyhttpd.uri import UriError, decode_path, parse_host, split_target

if TYPE_CHECKING:
    from pyhttpd.config import Config
    from pyhttpd.core import CoreServerConfig, Listen, ReadTimeout
    from pyhttpd.server import Server

RECV_SIZE = 65536
OUTPUT_BUFFER = 16384
"""Response bytes collected before a send: status line, headers and a small body go out in
one write (with TCP_NODELAY set, a second small write would be a second packet)."""
GATHER_PARTS = 64
"""A larger body goes out with its head in one sendmsg of up to this many pieces."""
KEEPALIVE_TURN = 0.001
"""Seconds a keep-alive connection may go on serving requests that are already there when
the last one is done; then it waits for the hub like the others. Otherwise a client quick to
send its next request keeps the child's greenlets to itself and the other connections'
requests wait (the latency tail)."""
DISCARD_LIMIT = 1 << 20
"""Unread request body read and dropped after a response to keep the connection; more
than this and the connection is closed instead."""
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20

# ap_status_drops_connection
DROPS_CONNECTION = frozenset((400, 408, 411, 413, 414, 500, 501, 503))
_TOKEN_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "transfer-encoding", "content-length"))
_HOP_BY_HOP_LENGTHS = frozenset(len(name) for name in _HOP_BY_HOP)
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}  # llhttp's version -> r.protocol
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# The request header names the protocol reads itself: a name of any other length is not
# even lowercased.
_FRAMING_NAMES = ("host", "expect", "connection", "content-length", "transfer-encoding")
_FRAMING_NAME_LENGTHS = frozenset(len(name) for name in _FRAMING_NAMES)

# How the response body is framed; decided when the head is sent.
_HEAD_PENDING = 0
_LENGTH = 1
_CHUNKED = 2
_UNTIL_CLOSE = 3
_NO_BODY = 4


class _Refusal(Exception):
    """A request the protocol answers itself with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Message:
    """One request as llhttp delivers it: head fields, then body pieces. What most requests
    leave unset stays a class attribute (a message is made for every request)."""

    url = b""
    nfields = 0
    headers_done = False
    method = b""
    version = "1.1"
    keep_alive = False
    host: str | None = None
    hosts = 0
    content_length: int | None = None
    transfer_encoding: str | None = None
    expect: str | None = None
    connection = ""
    complete = False
    error: _Refusal | None = None
    expect_100 = False
    continue_sent = False

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: deque[bytes] = deque()


class HttpConnection:
    """One HTTP connection: reads its requests, serves them, and is their Transport.

    `HttpConnection(config, sock, addr, listen, slot).serve()` returns when the connection
    is finished and closed; it never raises for anything the client sends. `sock` may be
    a gevent socket or a plain one; `slot` is the scoreboard WorkerSlot (or None).
    """

    def __init__(self, config: Config, sock: socket.socket, addr: Any, listen: Listen | None, slot: Any = None) -> None:
        self.config = config
        self._sock = sock
        self._raw = os_socket(sock)
        self._slot = slot
        remote_ip, remote_port = (addr[0], addr[1]) if isinstance(addr, tuple) else ("", 0)
        try:
            local = sock.getsockname()
        except OSError:
            local = None
        if isinstance(local, tuple):
            local_ip, local_port = local[0], local[1]
        else:  # a socketpair in tests
            local_ip, local_port = (listen.host or "127.0.0.1", listen.port) if listen else ("127.0.0.1", 0)
        self.connection = Connection(
            remote_ip, remote_port, local_ip, local_port, listen.protocol if listen else "http", slot
        )
        # Limits and read timeouts come from the address's default server: the Host is
        # not known while the head is read (as httpd uses the connection's base server).
        self._base_server = select_server(config, local_ip, local_port, None)
        core: CoreServerConfig = self._base_server.core
        self._limit_line = core.limit_request_line
        self._limit_field = core.limit_request_field_size
        self._limit_fields = core.limit_request_fields
        self._head_cap = max(
            self._limit_line + 2 + max(self._limit_fields, 100) * (self._limit_field + 2) + 2, 2 * RECV_SIZE
        )
        self._line_cap = max(self._limit_field, self._limit_line + 32) + 2
        self._max_fields = self._limit_fields or sys.maxsize  # LimitRequestFields 0: no limit
        self._max_field_bytes = self._limit_field - 2  # a field counts its ": " too
        self._header_timeout: ReadTimeout | None = core.header_read_timeout
        self._server: Server = self._base_server  # the last request's, for keep-alive
        # reading
        self._parser = httptools.HttpRequestParser(self)
        self._buf = bytearray(RECV_SIZE)
        self._view = memoryview(self._buf)
        self._ready: deque[_Message] = deque()
        self._parsing: _Message | None = None
        self._last: _Message | None = None
        self._priming = False
        self._refusal: _Refusal | None = None
        self._dead = False  # the parser failed; nothing more is read
        self._eof = False
        self._head_bytes = 0
        self._line_len = 0
        self._sock_timeout: float | None = -1.0
        self._watchers: tuple[Any, Any, Any, Any] | None = None  # see _make_watchers
        self._idle_timer: tuple[float, Any] | None = None  # see _recv_idle
        self._turn_ends = time.monotonic() + KEEPALIVE_TURN
        self._stopping = _graceful_stop_check()
        self._server_line = _server_header(config)
        self._selected: tuple[str | None, Server | None] = (None, None)  # see _prepare
        self._vhost: tuple[Any, str] = (None, "")  # the last request's server, its scoreboard name
        # the request being served
        self._msg = _Message()
        self._body_deadline = 0.0
        self._body_cap = 0.0
        # its response
        self._resp: Request | None = None
        self._head_lines: list[str] | None = None  # taken by send_headers, not sent yet
        self._head_length: int | None = None
        self._handler_close = False
        self._declared: int | None = None  # the Content-Length the body will complete
        self._framing = _HEAD_PENDING
        self._left = 0
        self._out: list[bytes] = []
        self._out_len = 0
        self._keep = False
        self._must_close = False

    # -- the connection ------------------------------------------------------------------

    def serve(self) -> None:
        """Serve requests until the connection ends, then close it."""
        c = self.connection
        try:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # not TCP
            if self.config.hooks.run_all("pre_connection", c) != OK:
                self._must_close = True
                return
            if self._slot is not None:
                self._slot.set_status("R")
            while True:
                msg = self._next_message()
                if msg is None:
                    return
                self._serve_message(msg)
                if not self._keep:
                    return
                if self._slot is not None:
                    self._slot.set_status("K")
        except OSError:
            self._must_close = True  # the client went away or timed out mid-response
        except Exception:
            self._must_close = True
            log_error(
                self._server, "error", "core",
                f"connection from {c.remote_ip}:{c.remote_port} failed:\n{traceback.format_exc().rstrip()}",
            )
        finally:
            self._close()
            if self._slot is not None:
                self._slot.set_status("_")

    def _serve_message(self, msg: _Message) -> None:
        self._msg = msg
        self._resp = None
        self._head_lines = None
        self._declared = None
        self._framing = _HEAD_PENDING
        self._out = []
        self._out_len = 0
        self._keep = False
        self._body_deadline = 0.0
        r = Request(self.config, self.connection, self)
        r.server = self._base_server
        try:
            self._prepare(r, msg)
        except (_Refusal, UriError) as e:
            self._refuse(r, e.status, e.message)
            return
        slot = self._slot
        if slot is not None:
            vhost = self._vhost
            if vhost[0] is not r.server:
                vhost = self._vhost = (r.server, _vhost_name(r))
            slot.start_request(r.connection.remote_ip, vhost[1], r.the_request, r.protocol)
        process_request(r)
        self._finish_response(r)
        if slot is not None:
            slot.end_request(r.bytes_sent)
        if self._keep and not msg.complete:
            self._keep = self._discard_body(msg)

    def _prepare(self, r: Request, msg: _Message) -> None:
        """Fill the request from the parsed message; raise _Refusal or UriError to refuse it."""
        method = _METHODS.get(msg.method) or msg.method.decode("latin-1")
        url = msg.url.decode("latin-1")
        if method:
            r.method = method
        r.unparsed_uri = url
        version = msg.version
        r.protocol = protocol = _PROTOCOLS.get(version) or "HTTP/" + version
        r.proto_num = 1001 if version == "1.1" else 1000
        r.the_request = f"{method} {url} {protocol}" if method else ""
        r.header_only = method == "HEAD"
        r.headers_in = Headers(msg.headers)
        r.remaining = None if msg.transfer_encoding is not None else (msg.content_length or 0)
        if msg.error is not None:
            raise msg.error
        if version not in _PROTOCOLS:
            if version[0] in "01":
                raise _Refusal(400, f"request failed: unsupported protocol {protocol}")
            raise _Refusal(505, f"request failed: unsupported protocol {protocol}")
        target = split_target(url)
        hostname = target.hostname
        if msg.hosts > 1:
            raise _Refusal(400, "client sent more than one Host header")
        if hostname is None and msg.host:
            hostname = parse_host(msg.host)[0]
        if msg.host is None and target.hostname is None and r.proto_num >= 1001:
            raise _Refusal(400, "client sent HTTP/1.1 request without hostname (see RFC2616 section 14.23)")
        r.hostname = hostname
        # The virtual host by Host, remembered for the connection's next requests.
        known = self._selected
        if known[0] != hostname or known[1] is None:
            c = r.connection
            known = self._selected = (hostname, select_server(self.config, c.local_ip, c.local_port, hostname))
        r.server = known[1]
        if msg.transfer_encoding is not None:
            if msg.transfer_encoding.strip().lower() != "chunked":
                raise _Refusal(400, f"client sent unknown Transfer-Encoding ({msg.transfer_encoding}): {url}")
            if r.proto_num < 1001:  # RFC 9112 6.1: the framing of such a message is faulty
                raise _Refusal(400, f"client sent Transfer-Encoding with {protocol}: {url}")
        if msg.expect is not None and r.proto_num >= 1001:
            if msg.expect.strip().lower() != "100-continue":
                raise _Refusal(417, f"client sent an unrecognized expectation value of Expect: {msg.expect}")
            msg.expect_100 = True
        if target.path == "*":
            if method != "OPTIONS":
                raise _Refusal(400, f"invalid request-URI {url}")
            r.uri = "*"
        else:
            r.uri = decode_path(target.path)
        r.args = target.args

    def _refuse(self, r: Request, status: int, message: str) -> None:
        """Answer a request the protocol refuses, log it, and close after the answer."""
        self._must_close = True
        r.keepalive = False
        log_rerror(r, "info", "core", message)
        r.per_dir_config = r.server.lookup_defaults
        if self._slot is not None:
            self._slot.start_request(r.connection.remote_ip, _vhost_name(r), r.the_request, r.protocol)
        try:
            send_error_response(r, status)
            self._finish_response(r)
        finally:
            self.config.hooks.run_all("log_transaction", r)
            if self._slot is not None:
                self._slot.end_request(r.bytes_sent)

    def _close(self) -> None:
        """Close; first drain what the client still sends if it may not have read our
        answer yet, so its unread bytes do not turn our close into a reset (lingering close)."""
        sock = self._sock
        msg = self._msg
        linger = not self._eof and (
            self._must_close or self._parsing is not None or bool(self._ready) or not msg.complete
        )
        try:
            if linger:
                if self._slot is not None:
                    self._slot.set_status("C")
                sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + LINGER_SECONDS
                drained = 0
                while drained < LINGER_BYTES:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    sock.settimeout(left)
                    n = sock.recv_into(self._buf)
                    if not n:
                        break
                    drained += n
        except OSError:
            pass
        finally:
            if self._watchers is not None:  # before the descriptor can be reused
                self._watchers[1].close()
                self._watchers[3].close()
            if self._idle_timer is not None:
                self._idle_timer[1].close()
            sock.close()

    # -- reading requests ----------------------------------------------------------------

    def _settimeout(self, seconds: float | None) -> None:
        if seconds != self._sock_timeout:
            self._sock.settimeout(seconds)
            self._sock_timeout = seconds

    def _next_message(self) -> _Message | None:
        """The next request whose head is complete (or refused), or None when the
        connection is over (closed by the client, idle past KeepAliveTimeout)."""
        ready = self._ready
        if ready:
            self._yield_turn()
            return ready.popleft()
        if self._dead or self._eof:
            return None
        waiting = self._parsing is None and self.connection.keepalives > 0
        header = self._header_timeout
        rate = 0
        deadline = cap = 0.0
        if not waiting:
            deadline, cap, rate = self._start_header_timer(header)
        core = self._server.core
        timeout = core.timeout
        while not ready:
            if waiting:
                wait = core.keep_alive_timeout
            elif deadline:
                wait = min(timeout, deadline - time.monotonic())
                if wait <= 0:
                    return self._timed_out()
            else:
                wait = timeout
            try:
                if waiting:
                    n = self._recv_idle(wait)
                else:
                    self._settimeout(wait)
                    n = self._sock.recv_into(self._buf)
            except TimeoutError:
                return None if waiting else self._timed_out()
            except OSError:
                self._eof = True
                return None
            if not n:
                self._eof = True
                if self._parsing is not None:
                    log_error(self._base_server, "info", "core", "request failed: error reading the headers")
                return None
            if waiting:
                waiting = False
                if self._slot is not None:
                    self._slot.set_status("R")
                self._feed_received(n)
                if not ready and not self._dead:
                    # More reads for this head: RequestReadTimeout header= runs from its first bytes.
                    deadline, cap, rate = self._start_header_timer(header)
            else:
                if rate:
                    deadline = min(deadline + n / rate, cap) if cap else deadline + n / rate
                self._feed_received(n)
            if self._dead and not ready:
                return None
        return ready.popleft()

    def _recv_idle(self, seconds: float) -> int:
        """recv_into while the connection waits for its next request, up to `seconds`
        (TimeoutError after). On a gevent socket the request is taken straight from the OS
        socket when it is already there (the usual case under load) and the connection's turn
        (KEEPALIVE_TURN) is not over; else the greenlet waits on the hub for the socket to
        become readable, under a loop timer the connection keeps and re-arms (libev's
        ev_timer_again). gevent's recv would make, start and drop a Timeout for every wait."""
        raw = self._raw
        if raw is None:
            self._settimeout(seconds)
            return self._sock.recv_into(self._buf)
        while True:
            if time.monotonic() < self._turn_ends:
                try:
                    return raw.recv_into(self._buf)
                except BlockingIOError:
                    pass
            hub, io, throw, _ = self._watchers or self._make_watchers()
            idle = self._idle_timer
            if idle is None or idle[0] != seconds:
                if idle is not None:
                    idle[1].close()
                # Repeating every `seconds`, so that again() restarts the whole interval.
                idle = self._idle_timer = (seconds, hub.loop.timer(seconds, seconds))
            timer = idle[1]
            timer.again(throw, TimeoutError)
            try:
                hub.wait(io)
            finally:
                timer.stop()
            self._turn_ends = time.monotonic() + KEEPALIVE_TURN

    def _yield_turn(self) -> None:
        """Let the hub serve the child's other connections once before this one goes on with
        requests it has already received (pipelined), when its turn is over."""
        if self._raw is None or time.monotonic() < self._turn_ends:
            return
        hub, _, _, soon = self._watchers or self._make_watchers()
        hub.wait(soon)  # due right after the hub's next poll, so the ready ones go first
        self._turn_ends = time.monotonic() + KEEPALIVE_TURN

    def _make_watchers(self) -> tuple[Any, Any, Any, Any]:
        """The hub, a read watcher on the socket, this greenlet's throw, a timer due at once."""
        from gevent import get_hub, getcurrent

        hub = get_hub()
        self._watchers = (hub, hub.loop.io(self._raw.fileno(), 1), getcurrent().throw, hub.loop.timer(0.0))
        return self._watchers

    @staticmethod
    def _start_header_timer(stage: ReadTimeout | None) -> tuple[float, float, int]:
        if stage is None or not stage.timeout:
            return 0.0, 0.0, 0
        now = time.monotonic()
        return now + stage.timeout, (now + stage.max_timeout if stage.max_timeout else 0.0), stage.min_rate

    def _timed_out(self) -> _Message:
        """RequestReadTimeout (or Timeout) expired while the head was being read: 408."""
        msg = self._parsing or _Message()
        msg.error = _Refusal(408, "request failed: timeout reading the request headers")
        self._parsing = None
        self._dead = True
        return msg

    def _feed_received(self, n: int) -> None:
        """Feed the bytes just received, then cap what a head may occupy."""
        in_head = self._parsing is None or not self._parsing.headers_done
        self._feed(self._view[:n])
        msg = self._parsing
        if self._dead or msg is None or msg.headers_done:
            return
        # Still inside a head: count its bytes and the length of its unfinished line.
        self._head_bytes += n
        nl = self._buf.rfind(b"\n", 0, n)
        if nl < 0:
            self._line_len = self._line_len + n if in_head else n
        else:
            self._line_len = n - nl - 1
        if self._line_len > self._line_cap or self._head_bytes > self._head_cap:
            # A request line this long was refused by on_url already; this is a field.
            self._fail(msg, _Refusal(400, "request failed: Size of a request header field exceeds server limit"))

    def _feed(self, data: Any) -> None:
        if self._dead:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            self._after_upgrade(bytes(data[e.args[0]:]))
        except httptools.HttpParserError as e:
            self._fail(self._parsing, self._refusal or _parse_error(e, data))

    def _fail(self, msg: _Message | None, refusal: _Refusal) -> None:
        """The parser cannot go on: `msg` (the request being parsed) gets the refusal."""
        self._dead = True
        if msg is None:
            msg = _Message()
        msg.error = refusal
        if not msg.headers_done:
            msg.headers_done = True
            self._ready.append(msg)
        self._parsing = None

    def _after_upgrade(self, rest: bytes) -> None:
        """llhttp stops at an Upgrade (or CONNECT) request as if its body were another
        protocol. pyhttpd speaks none (like httpd without mod_http2 or mod_proxy_wstunnel),
        so the request is served as a plain one: a new parser takes over, primed with a
        head that frames the body the same way, and reads on."""
        msg = self._last
        self._parser = httptools.HttpRequestParser(self)
        if msg is not None and (msg.transfer_encoding is not None or msg.content_length):
            msg.complete = False
            self._parsing = msg
            self._priming = True
            framing = (
                b"Transfer-Encoding: chunked" if msg.transfer_encoding is not None
                else b"Content-Length: %d" % msg.content_length
            )
            self._parser.feed_data(b"POST / HTTP/1.1\r\n" + framing + b"\r\n\r\n")
        if rest:
            self._feed(rest)

    # llhttp callbacks

    def on_message_begin(self) -> None:
        if not self._priming:
            self._parsing = _Message()

    def on_url(self, piece: bytes) -> None:
        if self._priming:
            return
        msg = self._parsing
        msg.url += piece
        if len(msg.url) > self._limit_line:
            self._refuse_in_parser(414, f"request failed: client's request-line exceeds LimitRequestLine (longer than {self._limit_line})")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._priming:
            return
        msg = self._parsing
        nfields = msg.nfields = msg.nfields + 1
        if nfields > self._max_fields:
            self._refuse_in_parser(400, "request failed: Number of request headers exceeds set limit")
        if len(name) + len(value) > self._max_field_bytes:
            self._refuse_in_parser(400, "request failed: Request header exceeds LimitRequestFieldSize: " + name.decode("latin-1")[:80])
        if msg.headers_done:
            return  # a trailer of a chunked body: checked, then dropped
        n = name.decode("latin-1")
        v = value.decode("latin-1")
        msg.headers.append((n, v))
        if len(n) in _FRAMING_NAME_LENGTHS:
            lname = n.lower()
            if lname == "host":
                msg.hosts += 1
                msg.host = v
            elif lname == "content-length":
                msg.content_length = int(v)  # llhttp accepts digits only, once
            elif lname == "transfer-encoding":
                msg.transfer_encoding = v
            elif lname == "expect":
                msg.expect = v
            elif lname == "connection":
                msg.connection = v

    def on_headers_complete(self) -> None:
        if self._priming:
            self._priming = False
            return
        msg = self._parsing
        parser = self._parser
        msg.method = parser.get_method()
        msg.version = parser.get_http_version()
        msg.keep_alive = parser.should_keep_alive()
        msg.headers_done = True
        if len(msg.method) + len(msg.url) + len(msg.version) + 7 > self._limit_line:
            msg.error = _Refusal(414, f"request failed: client's request-line exceeds LimitRequestLine (longer than {self._limit_line})")
        self._head_bytes = 0
        self._line_len = 0
        self._last = msg
        self._ready.append(msg)

    def on_body(self, data: bytes) -> None:
        self._parsing.body.append(data)

    def on_message_complete(self) -> None:
        self._parsing.complete = True
        self._parsing = None

    def _refuse_in_parser(self, status: int, message: str) -> None:
        self._refusal = _Refusal(status, message)
        raise self._refusal

    # -- Transport: the request body -----------------------------------------------------

    def read_body(self, size: int) -> bytes:
        """Up to `size` bytes of the request body (Content-Length or chunked); b"" at its end.

        The first read of a request that sent `Expect: 100-continue` answers
        `100 Continue` first. Raises HTTPError(400) for a malformed body and HTTPError(408)
        when the body does not arrive within RequestReadTimeout body= or Timeout.
        """
        msg = self._msg
        body = msg.body
        if not body and not msg.complete:
            if msg.error is not None:
                self._must_close = True
                raise HTTPError(msg.error.status, msg.error.message)
            if msg.expect_100 and not msg.continue_sent and self._resp is None:
                msg.continue_sent = True
                self._send(_CONTINUE)
            while not body and not msg.complete:
                self._receive_body(msg)
        if not body:
            return b""
        chunk = body[0]
        if len(chunk) <= size:
            body.popleft()
            return chunk
        body[0] = chunk[size:]
        return chunk[:size]

    def _receive_body(self, msg: _Message) -> None:
        core = self._server.core
        now = time.monotonic()
        stage = core.body_read_timeout
        if not self._body_deadline and stage is not None and stage.timeout:
            self._body_deadline = now + stage.timeout
            self._body_cap = now + stage.max_timeout if stage.max_timeout else 0.0
        wait = core.timeout
        if self._body_deadline:
            wait = min(wait, self._body_deadline - now)
        if wait <= 0:
            self._body_failed(408, "request failed: timeout reading the request body")
        self._settimeout(wait)
        try:
            n = self._sock.recv_into(self._buf)
        except TimeoutError:
            n = -1
        if n < 0:
            self._body_failed(408, "request failed: timeout reading the request body")
        if not n:
            self._eof = True
            self._must_close = True
            raise ConnectionResetError("the client closed the connection while sending the body")
        if self._body_deadline and stage is not None and stage.min_rate:
            extended = self._body_deadline + n / stage.min_rate
            self._body_deadline = min(extended, self._body_cap) if self._body_cap else extended
        self._feed(self._view[:n])
        if msg.error is not None:
            self._body_failed(msg.error.status, msg.error.message)

    def _body_failed(self, status: int, message: str) -> None:
        self._must_close = True
        self._dead = True
        raise HTTPError(status, message)

    def _discard_body(self, msg: _Message) -> bool:
        """Read and drop the rest of a body the handler left, so the connection can carry
        the next request; False when it cannot (too long, no 100 Continue sent, error)."""
        if msg.expect_100 and not msg.continue_sent:
            return False  # the client may never send it
        if msg.content_length is not None and msg.content_length > DISCARD_LIMIT:
            return False
        dropped = 0
        try:
            while dropped <= DISCARD_LIMIT:
                chunk = self.read_body(RECV_SIZE)
                if not chunk:
                    return True
                dropped += len(chunk)
        except (HTTPError, OSError):
            pass
        self._must_close = True
        return False

    # -- Transport: the response ---------------------------------------------------------

    def send_headers(self, r: Request) -> None:
        """Take the status and headers of `r`. They go out with the first body bytes, or
        at the end of the response, once the framing is known."""
        self._resp = r
        status = r.status
        status_line = r.status_line
        if status_line and status_line.startswith(str(status)):
            first = f"HTTP/1.1 {status_line}\r\n"
        else:
            first = _STATUS_LINES.get(status) or _status_line(status)
        lines = [first, _date_header(r.request_time), self._server_line]
        length: int | None = None
        close = False
        for table in (r.headers_out, r.err_headers_out):
            for name, value in table:
                # The framing and the connection are decided here.
                if len(name) in _HOP_BY_HOP_LENGTHS and (lname := name.lower()) in _HOP_BY_HOP:
                    if lname == "content-length":
                        if length is None and value.isdigit():
                            length = int(value)
                    elif lname == "connection" and "close" in value.lower():
                        close = True
                    continue
                lines.append(f"{name}: {value}\r\n")
        if r.header_only or status in (204, 304) or status < 200:
            self._declared = None
            self._framing = _NO_BODY
        else:
            self._declared = length
        self._head_lines = lines
        self._head_length = length
        self._handler_close = close

    def write(self, data: bytes) -> None:
        """Response body bytes; small writes are collected and sent together, and sent at
        once when they complete the declared Content-Length."""
        self._out.append(data)
        self._out_len += len(data)
        if self._out_len >= OUTPUT_BUFFER or (self._declared is not None and self._out_len >= self._declared):
            self._push(False)

    def flush(self) -> None:
        """Send what has been collected now (a streaming handler's explicit flush)."""
        self._push(False)

    def sendfile(self, file: BinaryIO, offset: int, count: int) -> None:
        """Send `count` bytes of `file` from `offset`: with os.sendfile, or within the
        first write when small."""
        fd = file.fileno()
        if self._out_len + count <= OUTPUT_BUFFER:
            data = os.pread(fd, count, offset)
            if len(data) < count:
                self._must_close = True
                raise OSError(f"file shrank while being sent ({len(data)} of {count} bytes)")
            self.write(data)
            return
        self._push(False, more=True)
        framing = self._framing
        if framing == _NO_BODY:
            return
        if framing == _LENGTH:
            if count > self._left:
                count = self._left
                self._must_close = True
            self._left -= count
        if framing == _CHUNKED:
            self._send(b"%x\r\n" % count, socket.MSG_MORE)
        self._settimeout(self._server.core.timeout)
        _send_file(self._sock, fd, offset, count)
        if framing == _CHUNKED:
            self._send(b"\r\n")

    def _push(self, final: bool, more: bool = False) -> None:
        """Send the head if it is still due, then the collected body in the response's
        framing; `final` ends the response (Content-Length is computed when the whole
        body is known by then)."""
        parts: list[bytes] = []
        if self._head_lines is not None:
            parts.append(self._finish_head(final))
        framing = self._framing
        n = self._out_len
        if n:
            body = self._out
            self._out = []
            self._out_len = 0
            if framing == _LENGTH:
                if n > self._left:
                    body = [b"".join(body)[: self._left]]
                    n = self._left
                    self._must_close = True
                self._left -= n
                parts.extend(body)
            elif framing == _CHUNKED:
                parts.append(b"%x\r\n" % n)
                parts.extend(body)
                parts.append(b"\r\n")
            elif framing == _UNTIL_CLOSE:
                parts.extend(body)
        if final and framing == _CHUNKED:
            parts.append(b"0\r\n\r\n")
        if not parts:
            return
        flags = socket.MSG_MORE if more else 0
        if n >= OUTPUT_BUFFER and 1 < len(parts) <= GATHER_PARTS and self._raw is not None:
            self._send_gather(parts, flags)
        else:
            self._send(parts[0] if len(parts) == 1 else b"".join(parts), flags)

    def _send_gather(self, parts: list[bytes], flags: int) -> None:
        """Send the parts of a large response in one sendmsg, without joining them first."""
        try:
            sent = self._raw.sendmsg(parts, (), flags)
        except BlockingIOError:
            sent = 0
        if sent < sum(map(len, parts)):
            self._send(memoryview(b"".join(parts))[sent:], flags)

    def _send(self, data: bytes, flags: int = 0) -> None:
        """Send all of `data`: straight to the OS socket when its buffer takes it all (the
        usual case), else through the socket's sendall, which waits up to Timeout."""
        if self._raw is not None:
            data = send_at_once(self._raw, data, flags)
            if not data:
                return
        self._settimeout(self._server.core.timeout)
        self._sock.sendall(data, flags)

    def _finish_head(self, final: bool) -> bytes:
        """The head taken by send_headers, completed with the framing (Content-Length or
        chunked) and whether the connection stays open (ap_set_keepalive: Keep-Alive,
        Connection), then Content-Type, as httpd orders them."""
        r = self._resp
        assert r is not None
        lines = self._head_lines
        self._head_lines = None
        self._server = r.server
        length = self._head_length
        framing = self._framing
        if framing == _NO_BODY:
            if r.header_only and length is not None:
                lines.append(f"Content-Length: {length}\r\n")
        elif length is not None:
            framing = _LENGTH
            self._left = length
            lines.append(f"Content-Length: {length}\r\n")
        elif final:
            framing = _LENGTH
            self._left = self._out_len
            lines.append(f"Content-Length: {self._out_len}\r\n")
        elif r.proto_num >= 1001 and (r.connection.aborted or (r.keepalive and not self._must_close)):
            # A failed handler's partial body is chunked so that the missing last chunk
            # tells an HTTP/1.1 client it is truncated.
            framing = _CHUNKED
            lines.append("Transfer-Encoding: chunked\r\n")
        else:
            framing = _UNTIL_CLOSE
        self._framing = framing
        c = r.connection
        core = r.server.core
        limit = core.max_keep_alive_requests
        # ap_set_keepalive: whether the connection carries another request after this one.
        keep = (
            framing != _UNTIL_CLOSE and not self._handler_close and not self._must_close
            and r.keepalive and not c.aborted and self._msg.keep_alive
            and r.status not in DROPS_CONNECTION
            and core.keep_alive and core.keep_alive_timeout > 0
            and not (limit and limit - c.keepalives <= 0)
            and not self._stopping()
        )
        self._keep = keep
        if keep:
            if "keep-alive" in self._msg.connection.lower():
                timeout = int(core.keep_alive_timeout)
                lines.append(
                    f"Keep-Alive: timeout={timeout}, max={limit - c.keepalives}\r\n" if limit
                    else f"Keep-Alive: timeout={timeout}\r\n"
                )
                lines.append("Connection: Keep-Alive\r\n")
            c.keepalives += 1
        else:
            lines.append("Connection: close\r\n")
        status = r.status
        if r.content_type and status >= 200 and status not in (204, 304):
            lines.append(f"Content-Type: {r.content_type}\r\n")
        lines.append("\r\n")
        head = "".join(lines)
        if head.count("\n") != len(lines) or head.count("\r") != len(lines):
            head = _without_line_breaks(lines)  # a header value must not split the response
        return head.encode("latin-1", "replace")

    def _finish_response(self, r: Request) -> None:
        """End the response: headers if the handler sent nothing, the collected body, the
        last chunk. A response shorter than its Content-Length closes the connection."""
        if r.connection.aborted:
            self._must_close = True
            self._keep = False
            if r.headers_sent and (self._head_lines is not None or self._out_len):
                # What the handler produced before it failed goes out unterminated, then the
                # connection closes: the client sees a truncated response, not an empty one.
                with contextlib.suppress(OSError):
                    self._push(False)
            return
        if not r.headers_sent:
            r.send_headers()
        if self._head_lines is not None or self._out_len or self._framing == _CHUNKED:
            self._push(True)
        if self._framing == _LENGTH and self._left:
            self._keep = False
            self._must_close = True


def _parse_error(e: Exception, data: Any) -> _Refusal:
    """The status for what llhttp refused."""
    message = str(e)
    if isinstance(e, httptools.HttpParserInvalidMethodError):
        # A well-formed but unknown method is "not implemented"; garbage is a bad request.
        head = bytes(data[:40])
        token = head.split(b" ", 1)[0]
        if b" " in head and token and all(ch in _TOKEN_CHARS for ch in token):
            return _Refusal(501, f"request failed: method {token.decode('latin-1')} not implemented")
    elif message.startswith("Invalid HTTP version"):
        return _Refusal(505, f"request failed: {message}")
    return _Refusal(400, f"request failed: {message}")


def _send_file(sock: socket.socket, fd: int, offset: int, count: int) -> None:
    """os.sendfile on a (possibly non-blocking, gevent) socket. When the socket buffer is
    full, a block goes through sock.sendall, which waits cooperatively and honours the
    socket's timeout; then os.sendfile resumes."""
    out = sock.fileno()
    while count > 0:
        try:
            sent = os.sendfile(out, fd, offset, count)
        except BlockingIOError:
            block = os.pread(fd, min(count, RECV_SIZE), offset)
            if not block:
                raise OSError("file shrank while being sent") from None
            sock.sendall(block)
            sent = len(block)
        else:
            if not sent:
                raise OSError("file shrank while being sent")
        offset += sent
        count -= sent


def _vhost_name(r: Request) -> str:
    """host:port of the request's server, as the scoreboard shows it."""
    return f"{r.server.server_hostname or r.connection.local_ip}:{r.connection.local_port}"


_STATUS_LINES: dict[int, str] = {}


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {reason_phrase(status)}\r\n"
    return line


_date_cache: list[Any] = [0, ""]


def _date_header(when: float) -> str:
    """The Date header for a request time, formatted once a second."""
    second = int(when)
    if second != _date_cache[0]:
        _date_cache[0] = second
        _date_cache[1] = f"Date: {formatdate(second, usegmt=True)}\r\n"
    return _date_cache[1]


@lru_cache(maxsize=4)
def _server_header(config: Config) -> str:
    return f"Server: {server_banner(config)}\r\n"


def _without_line_breaks(lines: list[str]) -> str:
    body = [line[:-2].replace("\r", " ").replace("\n", " ") + "\r\n" for line in lines[:-1]]
    return "".join(body) + "\r\n"


def _graceful_stop_check() -> Callable[[], bool]:
    """The check whether this child is stopping gracefully (then connections close after
    the response); outside a child (tests) it never is."""
    try:
        from pyhttpd.child import graceful_stop_requested
    except ImportError:
        return _never
    return graceful_stop_requested


def _never() -> bool:
    return False
