"""A connection accepted on an ajp13 listener (`Listen 127.0.0.1:8009 ajp13`).

pyhttpd then stands where Tomcat stands behind mod_jk: each Forward Request becomes a
Request that runs through the same hooks as one read over HTTP, so WSGI applications,
static files and status pages answer over AJP too. The forwarded facts fill the request:
the client's address and port (`AJP_REMOTE_PORT`), `is_ssl` (r.is_https, HTTPS and the
SSL_* variables), `remote_user`, `auth_type`, the query string, the balancer's route
(`r.notes["ajp_route"]`) and the request attributes (into r.subprocess_env). The
virtual host is chosen by the listener's own address and the Host header (or the
forwarded server name when there is none); `r.notes["ajp_server_port"]` keeps the port
the client used on the web server.

This object is the request's Transport: the body is pulled with Get Body Chunk (after
the first packet, which the web server sends unasked when the length is known), the
response goes out as Send Headers, Send Body Chunks and End Response. `AjpSecret` must
match the secret of every request, else 403 and the connection closes, as Tomcat does.
A malformed packet closes this connection and nothing else.

On a gevent socket the packets that end a response on a reused connection leave at the
end of the event loop's turn (a BatchSender), after the child has served every request
that was ready: sending wakes the web server's thread, which on a busy machine takes the
CPU from the child in the middle of its batch, and every such switch costs both sides
their caches. The web server sends no next request on that connection before it has the
End Response, so nothing waits for these bytes but the web server.
"""

from __future__ import annotations

import hmac
import os
import socket
import time
from typing import TYPE_CHECKING, Any, BinaryIO

from modules.mod_jk.ajp13 import (
    MAGIC_TO_CONTAINER,
    AjpError,
    AjpProtocolError,
    CPing,
    ForwardRequest,
    PacketReader,
    SendHeaders,
    Shutdown,
    decode_body_packet,
    decode_server_message,
    encode_cpong,
    encode_end_response,
    encode_get_body_chunk,
    encode_send_body_chunk,
    encode_send_headers,
    max_body_chunk_size,
    max_send_body_chunk_size,
)
from pyhttpd.batch_send import BatchSender
from pyhttpd.child import graceful_stop_requested
from pyhttpd.headers import Headers
from pyhttpd.http_request import process_request, reason_phrase, send_error_response
from pyhttpd.log import log_error, log_rerror
from pyhttpd.module import OK
from pyhttpd.request import Connection, Request
from pyhttpd.scoreboard import SERVER_BUSY_KEEPALIVE, SERVER_BUSY_READ
from pyhttpd.server import select_server
from pyhttpd.socket_direct import os_socket
from pyhttpd.uri import UriError, decode_path, parse_host, split_target

if TYPE_CHECKING:
    from pyhttpd.config import Config
    from pyhttpd.core import Listen

# The web server frames the response for its client; these say nothing to it.
HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade")
)
# Request attributes mod_jk sends with TLS facts, and the SSL_* variables of mod_ssl.
SSL_ATTRIBUTES = {"AJP_SSL_PROTOCOL": "SSL_PROTOCOL"}
RECV_SIZE = 65536
# One receive buffer for a gevent child (see AjpConnection._recv).
_RECV_BUFFER = bytearray(RECV_SIZE)
_RECV_VIEW = memoryview(_RECV_BUFFER)
# Seconds between looks at a graceful stop while a connection waits for its next request.
IDLE_POLL = 1.0
# Response bytes gathered into one send: a few packets at a time, not one syscall each.
SEND_BATCH = 65536
_CPONG = encode_cpong()
_END_RESPONSE_REUSE = encode_end_response(True)
_END_RESPONSE_CLOSE = encode_end_response(False)
_REASONS: dict[int, str] = {}  # reason phrases by status, as reason_phrase() gives them


class AjpConnection:
    """Serves the AJP13 requests of one accepted connection, one at a time.

    `listen` is the Listen line the connection arrived on; `slot` the scoreboard worker
    slot (a WorkerSlot) serving it, or None.
    """

    def __init__(
        self, config: Config, sock: socket.socket, addr: Any, listen: Listen | None = None, slot: Any = None
    ) -> None:
        self.config = config
        self.sock = sock
        self.raw = os_socket(sock)
        self.listen = listen
        self.slot = slot
        g = config.global_config
        self.packet_size = g.ajp_packet_size
        self.secret = g.ajp_secret
        self.timeout = config.main_server.core.timeout
        self.reader = PacketReader(MAGIC_TO_CONTAINER, self.packet_size)
        self._idle: tuple[Any, Any, Any, Any] | None = None  # see _recv_idle
        # Every send on a gevent socket goes through it, so that order is kept.
        self.sender = BatchSender(sock, self._abandon) if self.raw is not None else None
        self.body_chunk_size = max_body_chunk_size(self.packet_size)
        self.send_chunk_size = max_send_body_chunk_size(self.packet_size)
        local = sock.getsockname()
        self.peer_ip = addr[0]
        self.peer = f"{addr[0]}:{addr[1]}"
        self.connection = Connection(addr[0], addr[1], local[0], local[1], "ajp13", slot)
        self.reuse = True
        self.broken = False  # a protocol error: close without End Response
        self.out: list[bytes] = []  # packets of the response not sent yet
        self.body_left: int | None = None  # response bytes still due by Content-Length
        # body of the current request
        self.first_body_pending = False
        self.body_remaining: int | None = None
        self.body_done = True
        self.body_buf = b""

    # -- the connection ------------------------------------------------------------------

    def serve(self) -> None:
        """Serve requests until the web server closes, a request ends the connection, a
        packet is malformed or the connection stays idle for `Timeout` seconds."""
        self.sock.settimeout(self.timeout or None)
        if self.sock.family in (socket.AF_INET, socket.AF_INET6):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.slot is not None:
            self.slot.set_status(SERVER_BUSY_READ)
        try:
            if self.config.hooks.run_all("pre_connection", self.connection) != OK:
                return
            while self.reuse and not self.broken:
                payload = self._idle_packet()
                if payload is None:
                    return
                msg = decode_server_message(payload)
                if isinstance(msg, ForwardRequest):
                    self._serve_request(msg)
                    if self.slot is not None:
                        self.slot.set_status(SERVER_BUSY_KEEPALIVE)
                    continue
                if isinstance(msg, CPing):
                    self._send(_CPONG)
                else:
                    assert isinstance(msg, Shutdown)
                    log_error(self.config.main_server, "info", "ajp", f"[client {self.peer}] ignoring an AJP13 Shutdown; closing")
                    return
        except AjpProtocolError as e:
            self._malformed(e)
        except OSError:
            pass  # the web server went away or the connection stayed idle too long
        finally:
            self._close()

    def _idle_packet(self) -> bytes | None:
        """The next message between requests; None when the web server closed, the
        connection stayed idle for Timeout seconds or the child is stopping gracefully
        (mod_jk notices a closed pooled connection and opens another, in the next child)."""
        deadline = None
        while not graceful_stop_requested():
            try:
                return self._next_packet(idle=True)
            except TimeoutError:
                # The first look at the clock comes after one IDLE_POLL, not per request.
                now = time.monotonic()
                if deadline is None:
                    deadline = now - min(IDLE_POLL, self.timeout) + self.timeout
                if now >= deadline:
                    return None
        return None

    def _next_packet(self, idle: bool = False) -> bytes | None:
        """The next whole packet's payload; None when the web server closed cleanly. An
        `idle` wait gives up after IDLE_POLL seconds (TimeoutError), any other after Timeout."""
        reader = self.reader
        while True:
            payload = reader.next_packet()
            if payload is not None:
                return payload
            data = self._recv_idle() if idle else self._recv()
            if not data:
                if reader.pending:
                    raise AjpProtocolError("connection closed in the middle of a packet")
                return None
            reader.feed(data)

    def _recv(self) -> bytes | memoryview:
        """The bytes there are: straight from the OS socket when they are there, else
        through the socket, which waits up to Timeout.

        On a gevent socket they are received into the child's buffer, a view of which is
        returned: the reader copies them before the greenlet can yield (the child's other
        threads are greenlets, so nothing else can write the buffer meanwhile)."""
        raw = self.raw
        if raw is None:
            return self.sock.recv(RECV_SIZE)
        try:
            return _RECV_VIEW[: raw.recv_into(_RECV_BUFFER)]
        except BlockingIOError:
            return _RECV_VIEW[: self.sock.recv_into(_RECV_BUFFER)]

    def _recv_idle(self) -> bytes | memoryview:
        """The bytes there are while the connection waits for its next message, waiting up
        to IDLE_POLL (or Timeout when shorter) seconds, then TimeoutError. On a gevent
        socket the greenlet waits on the hub for the socket to become readable, under a
        loop timer that the connection keeps and re-arms, instead of the Timeout gevent
        would make and drop for every wait."""
        raw = self.raw
        if raw is None:
            self.sock.settimeout(min(IDLE_POLL, self.timeout) or None)
            try:
                return self.sock.recv(RECV_SIZE)
            finally:
                self.sock.settimeout(self.timeout or None)
        # Nothing can have come while the response is still unsent: wait at once.
        ready = not self.sender.busy
        while True:
            if ready:
                try:
                    return _RECV_VIEW[: raw.recv_into(_RECV_BUFFER)]
                except BlockingIOError:
                    pass
            ready = True
            hub, io, timer, throw = self._idle or self._idle_watchers()
            if timer is None:
                hub.wait(io)
                continue
            timer.again(throw, TimeoutError)
            try:
                hub.wait(io)
            finally:
                timer.stop()

    def _idle_watchers(self) -> tuple[Any, Any, Any, Any]:
        """The hub, a read watcher on the socket, a timer repeating every idle poll (None
        when Timeout is 0: no limit) so that again() restarts the whole interval, and this
        greenlet's throw."""
        from gevent import get_hub, getcurrent

        hub = get_hub()
        poll = min(IDLE_POLL, self.timeout)
        timer = hub.loop.timer(poll, poll) if poll else None
        self._idle = (hub, hub.loop.io(self.raw.fileno(), 1), timer, getcurrent().throw)
        return self._idle

    def _malformed(self, error: Exception) -> None:
        self.broken = True
        log_error(
            self.config.main_server,
            "error",
            "ajp",
            f"[client {self.peer}] malformed AJP13 packet, closing the connection: {error}",
        )

    def _close(self) -> None:
        if not self.broken:
            try:
                self._send()  # what still waits for the end of the turn
            except OSError:
                pass
        elif self.sender is not None:
            self.sender.discard()
        self.out.clear()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._idle is not None:  # before the descriptor can be reused
            self._idle[1].close()
            if self._idle[2] is not None:
                self._idle[2].close()
        self.sock.close()

    # -- one request ---------------------------------------------------------------------

    def _serve_request(self, msg: ForwardRequest) -> None:
        content_length = msg.content_length  # AjpProtocolError when malformed
        r = self._build_request(msg, content_length)
        self.first_body_pending = bool(content_length)
        self.body_remaining = content_length
        self.body_done = content_length == 0
        self.body_buf = b""
        self.body_left = None
        host = r.headers_in.get("Host")
        if self.slot is not None:
            vhost = host or f"{msg.server_name}:{msg.server_port}"
            self.slot.start_request(self.connection.remote_ip, vhost, r.the_request, "ajp13")
        if self.secret is not None and not _same_secret(msg.secret, self.secret):
            self._refuse(r, "missing" if msg.secret is None else "wrong")
        else:
            try:
                self._set_target(r, msg, host)
            except UriError as e:
                log_rerror(r, "info", "ajp", e.message)
                send_error_response(r, e.status)
                self.config.hooks.run_all("log_transaction", r)
            else:
                process_request(r)
        if self.slot is not None:
            self.slot.end_request(r.bytes_sent)
        if graceful_stop_requested():
            self.reuse = False
        self._end_response(r)

    def _build_request(self, msg: ForwardRequest, content_length: int | None) -> Request:
        c = self.connection
        c.keepalives += 1
        c.aborted = False
        c.remote_ip = msg.remote_addr or self.peer_ip
        c.is_ssl = msg.is_ssl
        r = Request(self.config, c, self)
        method = msg.method
        protocol = msg.protocol
        query = msg.query_string
        r.method = method
        r.header_only = method == "HEAD"
        r.protocol = protocol
        r.proto_num = 1001 if protocol == "HTTP/1.1" else _proto_num(protocol)
        r.headers_in = Headers(msg.headers)
        r.args = query
        r.unparsed_uri = uri = msg.req_uri if query is None else f"{msg.req_uri}?{query}"
        r.the_request = f"{method} {uri} {protocol}"
        r.remaining = content_length
        r.user = msg.remote_user or None
        r.ap_auth_type = msg.auth_type or None
        r.notes["ajp_server_port"] = msg.server_port
        if msg.route:
            r.notes["ajp_route"] = msg.route
        env = r.subprocess_env
        if msg.remote_host and msg.remote_host != msg.remote_addr:
            env["REMOTE_HOST"] = msg.remote_host
        if msg.is_ssl:
            env["HTTPS"] = "on"
            for name, value in (
                ("SSL_CIPHER", msg.ssl_cipher),
                ("SSL_SESSION_ID", msg.ssl_session),
                ("SSL_CLIENT_CERT", msg.ssl_cert),
                ("SSL_CIPHER_USEKEYSIZE", None if msg.ssl_key_size is None else str(msg.ssl_key_size)),
            ):
                if value:
                    env[name] = value
        port = None
        for name, value in msg.req_attributes:
            env[name] = value
            if name == "AJP_REMOTE_PORT":
                port = value
            elif name in SSL_ATTRIBUTES:
                env[SSL_ATTRIBUTES[name]] = value
        c.remote_port = int(port) if port and port.isdigit() else 0
        return r

    def _set_target(self, r: Request, msg: ForwardRequest, host: str | None) -> None:
        """Decode and normalise the path as HTTP does, then choose the virtual host by the
        listener's address and the Host header (`host`, or the forwarded server name)."""
        path = msg.req_uri
        if path[:1] != "/":
            # An absolute URI: its authority is the Host, as Tomcat reads it.
            target = split_target(path)
            path = target.path
            if target.hostname and host is None:
                r.headers_in.set("Host", target.hostname)
                host = target.hostname
        r.uri = decode_path(path)
        r.hostname = parse_host(host)[0] if host else (msg.server_name.lower() or None)
        c = self.connection
        r.server = select_server(self.config, c.local_ip, c.local_port, host or msg.server_name or None)

    def _refuse(self, r: Request, why: str) -> None:
        """A request without the right secret gets 403 and the connection closes (Tomcat)."""
        log_rerror(r, "error", "ajp", f"AJP request refused: {why} secret (AjpSecret)")
        self.reuse = False
        r.keepalive = False
        send_error_response(r, 403)
        self.config.hooks.run_all("log_transaction", r)

    def _end_response(self, r: Request) -> None:
        if self.broken or r.connection.aborted:
            # Closing without End Response tells mod_jk the response failed, so the
            # client sees a truncated response, never a complete-looking wrong one.
            self.broken = True
            self._send()
            return
        if self.first_body_pending:
            # The body packet the web server sent unasked is on the wire still: drop it.
            self.first_body_pending = False
            if self._next_packet() is None:
                self.broken = True
                return
        if self.reuse and self.sender is not None:
            self.out.append(_END_RESPONSE_REUSE)
            self.sender.send(b"".join(self.out))
            self.out.clear()
        else:
            self._send(_END_RESPONSE_REUSE if self.reuse else _END_RESPONSE_CLOSE)

    # -- Transport -----------------------------------------------------------------------

    def read_body(self, size: int) -> bytes:
        """Up to `size` bytes of the request body, asking the web server for more as needed."""
        if not self.body_buf:
            if self.body_done:
                return b""
            self.body_buf = self._receive_body_packet()
        data, self.body_buf = self.body_buf[:size], self.body_buf[size:]
        return data

    def _receive_body_packet(self) -> bytes:
        if self.first_body_pending:
            self.first_body_pending = False
        else:
            wanted = self.body_chunk_size
            if self.body_remaining is not None:
                wanted = min(wanted, self.body_remaining)
            self._send(encode_get_body_chunk(wanted))
        try:
            payload = self._next_packet()
            if payload is None:
                raise ConnectionResetError("the web server closed the connection during the request body")
            data = decode_body_packet(payload)
        except AjpProtocolError as e:
            self._malformed(e)
            raise ConnectionAbortedError(str(e)) from e
        if not data:
            self.body_done = True
        elif self.body_remaining is not None:
            self.body_remaining -= len(data)
            if self.body_remaining <= 0:
                self.body_done = True
        return data

    def send_headers(self, r: Request) -> None:
        """Send the status and the response headers as one Send Headers packet."""
        content_type = r.content_type
        headers = [("Content-Type", content_type)] if content_type else []
        length = None  # headers_out's first Content-Length
        for table in (r.headers_out, r.err_headers_out):
            for name, value in table:
                lname = name.lower()
                if lname in HOP_BY_HOP or (lname == "content-type" and content_type):
                    continue
                if lname == "content-length" and length is None and table is r.headers_out:
                    length = value
                headers.append((name, value))
        reason = _reason(r)
        try:
            packet = encode_send_headers(SendHeaders(r.status, reason, headers), self.packet_size)
        except AjpError as e:
            log_rerror(r, "error", "ajp", f"response headers do not fit in AjpPacketSize {self.packet_size}: {e}")
            raise
        self.body_left = int(length) if length and length.isdigit() and not r.header_only else None
        self.out.append(packet)  # goes with the first body bytes, or with End Response

    def write(self, data: bytes) -> None:
        """Send body bytes as Send Body Chunks of at most AjpPacketSize - 8 bytes each.

        The bytes that complete a response of known length wait for End Response, so a
        small response leaves in one segment."""
        limit = self.send_chunk_size
        out = self.out
        if len(data) <= limit:
            out.append(encode_send_body_chunk(data, self.packet_size))
        else:
            view = memoryview(data)
            for start in range(0, len(view), limit):
                out.append(encode_send_body_chunk(bytes(view[start : start + limit]), self.packet_size))
                if len(out) >= SEND_BATCH // limit:
                    self._send()
        if self.body_left is not None:
            self.body_left -= len(data)
            if self.body_left <= 0:
                return
        self._send()

    def sendfile(self, file: BinaryIO, offset: int, count: int) -> None:
        """Send part of a file: AJP frames every chunk, so it is read, not os.sendfile'd."""
        fd = file.fileno()
        while count > 0:
            data = os.pread(fd, min(count, SEND_BATCH), offset)
            if not data:
                raise OSError(f"{getattr(file, 'name', 'file')} ended {count} bytes early")
            self.write(data)
            offset += len(data)
            count -= len(data)

    def flush(self) -> None:
        """An empty Send Body Chunk makes mod_jk flush its client connection."""
        self._send(encode_send_body_chunk(b"", self.packet_size))

    def _send(self, packet: bytes = b"") -> None:
        """Send what is held and `packet`, in one write, after what the sender holds."""
        out = self.out
        if packet:
            out.append(packet)
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if self.sender is not None:
            self.sender.send_now(data)
        elif data:
            self.sock.sendall(data)

    def _abandon(self, error: OSError | None = None) -> None:
        """The web server is gone or stopped reading: end the connection, which wakes the
        greenlet waiting for its next request."""
        self.broken = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _same_secret(given: str | None, expected: str) -> bool:
    if given is None:
        return False
    if given.isascii() and expected.isascii():
        return hmac.compare_digest(given, expected)
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


def _proto_num(protocol: str) -> int:
    """HTTP/1.1 -> 1001, as httpd's r->proto_num."""
    try:
        major, minor = protocol.removeprefix("HTTP/").split(".", 1)
        return int(major) * 1000 + int(minor)
    except ValueError:
        return 1000


def _reason(r: Request) -> str:
    if r.status_line:
        code, _, reason = r.status_line.partition(" ")
        if code == str(r.status) and reason:
            return reason
    phrase = _REASONS.get(r.status)
    if phrase is None:
        phrase = _REASONS[r.status] = reason_phrase(r.status)
    return phrase
