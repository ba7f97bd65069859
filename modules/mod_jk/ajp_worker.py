"""The ajp13 worker: one backend container reached over AJP13 (``jk_ajp_common.c``).

Serving a request is up to ``retries`` attempts, ``retry_interval`` ms apart. An attempt
takes a pooled connection (dropping the ones the backend closed while they were idle, and
the ones that fail the prepost CPing), or opens a new one (with the connect CPing), sends
the Forward Request and the first body packet, then follows the container: Send Headers
set the response, Send Body Chunks go to the client at once, Get Body Chunk is answered
from the client's body, End Response hands the connection back to the pool when the
container allows it.

An attempt that fails before the request can have had any effect is retried: connect and
send failures, a connection that dies before the reply, a reply timeout, a fail_on_status
status. Once the container has asked for the request body beyond the first packet, or
bytes of the response reached the client, the request is not repeated (recovery_options
can forbid more, or allow GET and HEAD again). What the client finally gets follows
mod_jk: 503 when the backend cannot be reached or a status failed, 504 for a reply
timeout, 502 when the reply broke off, 500 for an invalid AJP message, 413 for a request
too large for one packet, 400 when the client's body could not be read.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any

from pyhttpd.request import RequestEntityTooLarge

from .ajp13 import (
    AjpError,
    AjpProtocolError,
    EndResponse,
    GetBodyChunk,
    SendBodyChunk,
    SendHeaders,
    decode_container_message,
    encode_body_chunk,
    max_body_chunk_size,
)
from .pool import AjpConnection, BackendError, ConnectionPool, ReplyTimeout, resolve
from .service import ClientReadError, ClientWriteError, ServiceRequest

# recovery_options bits (jk_ajp_common.h RECOVER_*)
ABORT_IF_TCGETREQUEST = 1  # no retry once the container has the request
ABORT_IF_TCSENDHEADER = 2  # no retry once the container sent the headers
ABORT_IF_CLIENTERROR = 4  # close the backend connection when the client fails
ALWAYS_HTTP_HEAD = 8  # retry HEAD even when 1 says otherwise
ALWAYS_HTTP_GET = 16  # retry GET even when 1 says otherwise


class Outcome(enum.Enum):
    """How serving a request on a worker ended (mod_jk's service return codes)."""

    OK = "ok"
    CLIENT_ERROR = "client error"  # the client's side failed: never retried elsewhere
    SERVER_ERROR = "server error"  # an invalid AJP message, or our own failure
    PROTOCOL_ERROR = "protocol error"  # the backend's bytes could not be framed
    STATUS_ERROR = "status error"  # a negative fail_on_status code: fail the request
    STATUS_FATAL_ERROR = "status fatal error"  # a positive one: the backend is in error
    REPLY_TIMEOUT = "reply timeout"
    BACKEND_ERROR = "backend error"  # connect, send or receive failed
    BUSY = "busy"  # busy_limit reached or no pool slot came free


@dataclass(slots=True)
class ServiceResult:
    """The outcome of one request on a worker, the status the client gets when it failed,
    and whether another attempt (here or on another lb member) may still be made."""

    outcome: Outcome
    status: int = 200
    recoverable: bool = True
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


_OK = ServiceResult(Outcome.OK)


class AjpWorker:
    """An ajp13 worker of workers.properties, with this child's connection pool to it."""

    type = "ajp13"

    def __init__(self, name: str, properties: dict[str, Any], log: Any = None) -> None:
        p = properties
        self.name = name
        self.host: str = p["host"]
        self.port: int = p["port"]
        self.prefer_ipv6: bool = p["prefer_ipv6"]
        self.secret: str | None = p["secret"] or None
        self.max_packet_size: int = p["max_packet_size"]
        self.socket_timeout: float | None = p["socket_timeout"] or None  # seconds
        self.connect_timeout: float | None = _ms(p["socket_connect_timeout"])
        self.socket_keepalive: bool = p["socket_keepalive"]
        self.socket_buffer: int = p["socket_buffer"]
        self.ping_mode: str = p["ping_mode"]
        self.ping_timeout: float | None = _ms(p["ping_timeout"])
        self.connect_ping: float | None = _ms(p["connect_timeout"])  # CPing after connect
        self.prepost_ping: float | None = _ms(p["prepost_timeout"])  # CPing before a request
        self.ping_interval: float = p["connection_ping_interval"]  # seconds
        self.reply_timeout: int = p["reply_timeout"]  # ms, 0: none
        self.retries: int = p["retries"]
        self.retry_interval: float = p["retry_interval"] / 1000.0
        self.recovery_options: int = p["recovery_options"]
        self.fail_on_status: tuple[int, ...] = tuple(p["fail_on_status"])
        self.busy_limit: int = p["busy_limit"]
        self.pool_timeout: float = p["connection_pool_timeout"]  # seconds
        self.acquire_timeout: float = p["connection_acquire_timeout"] / 1000.0
        self.pool = ConnectionPool(p["connection_pool_size"], p["connection_pool_minsize"])
        self.log = log
        self._address: tuple[str, int] | None = None
        # runtime state of this child, as jkstatus shows an ajp worker
        self.state = "IDLE"
        self.used = 0
        self.errors = 0
        self.client_errors = 0
        self.reply_timeouts = 0
        self.bytes_read = 0  # request bytes forwarded
        self.bytes_transferred = 0  # response bytes passed on
        self.error_time = 0.0
        self.last_reset = time.time()

    def __repr__(self) -> str:
        return f"<ajp13 worker {self.name} {self.host}:{self.port}>"

    # -- serving -------------------------------------------------------------------------

    def service(self, s: ServiceRequest) -> ServiceResult:
        """Serve ``s`` on this backend (see the module docstring)."""
        busy = self.reserve()
        return busy if busy is not None else self.serve_reserved(s)

    def reserve(self) -> ServiceResult | None:
        """Take a connection slot for one request: None when taken, else the BUSY result
        (busy_limit reached, or no slot came free within connection_acquire_timeout)."""
        if self.busy_limit and self.pool.busy >= self.busy_limit:
            return self._failed(ServiceResult(Outcome.BUSY, 503, True,
                                              f"({self.name}) busy limit {self.busy_limit} reached"))
        if not self.pool.acquire(self.acquire_timeout):
            return self._failed(ServiceResult(Outcome.BUSY, 503, True,
                                              f"({self.name}) no free connection in the pool "
                                              f"of {self.pool.size}"))
        return None

    def serve_reserved(self, s: ServiceRequest) -> ServiceResult:
        """Serve ``s`` in the slot reserve() took, and give the slot back."""
        self.used += 1
        kept: AjpConnection | None = None
        try:
            try:
                packet = s.forward_packet(self.secret, self.max_packet_size)
            except AjpError as e:
                self.client_errors += 1
                return ServiceResult(Outcome.CLIENT_ERROR, 413, False,
                                     f"({self.name}) the request does not fit in a packet ({e}); "
                                     "check max_packet_size")
            if self.state == "ERROR":
                self.state = "PROBE"
            result = _OK
            for attempt in range(self.retries):
                if attempt:
                    time.sleep(self.retry_interval)
                result, kept = self._attempt(s, packet)
                if result.ok or not result.recoverable:
                    break
                self._log("info", f"({self.name}) sending request to tomcat failed (recoverable), "
                                  f"{result.message} (attempt={attempt + 1})")
        finally:
            self.pool.release(kept)
        if result.ok:
            self.state = "OK"
        elif result.outcome is Outcome.CLIENT_ERROR:
            self.client_errors += 1
        else:
            self._failed(result)
        return result

    def _failed(self, result: ServiceResult) -> ServiceResult:
        self.state = "ERROR"
        self.errors += 1
        self.error_time = time.time()
        return result

    def _attempt(self, s: ServiceRequest, packet: bytes) -> tuple[ServiceResult, AjpConnection | None]:
        """One try: a connection, the request, the reply. Returns the result and the
        connection when it may be reused."""
        try:
            conn = self._connection()
        except BackendError as e:
            return ServiceResult(Outcome.BACKEND_ERROR, 503, True, str(e)), None
        try:
            # The request and its first body packet leave in one send.
            if s.first_body is not None:
                conn.send(packet + encode_body_chunk(s.first_body))
                self.bytes_read += len(packet)
            elif s.content_length > 0:
                try:
                    data = s.read_first_body()
                except (ClientReadError, RequestEntityTooLarge) as e:
                    # The container expects a body packet after the request: end it empty.
                    conn.send(packet + encode_body_chunk(b""))
                    self.bytes_read += len(packet)
                    conn.close()
                    return self._client_failed(f"reading the request body failed: {e}", _status_of(e)), None
                conn.send(packet + encode_body_chunk(data))
                self.bytes_read += len(packet) + len(data)
            else:
                conn.send(packet)
                self.bytes_read += len(packet)
        except BackendError as e:
            conn.close()
            return ServiceResult(Outcome.BACKEND_ERROR, 503, True, str(e)), None
        except BaseException:
            conn.close()
            raise
        try:
            return self._reply(conn, s)
        except BaseException:
            conn.close()  # a failure of our own: the connection's state is unknown
            raise

    def _connection(self) -> AjpConnection:
        """A usable idle connection, else a new one; raises BackendError."""
        pool = self.pool
        while (conn := pool.pop_idle()) is not None:
            if not conn.is_connected():
                conn.close()
            elif self.prepost_ping and not conn.cping(self.prepost_ping):
                self._log("info", f"({self.name}) prepost cping/cpong failed, closing the connection")
                conn.close()
            else:
                return conn
        if self._address is None:
            self._address = resolve(self.host, self.port, self.prefer_ipv6)
        conn = AjpConnection.open(
            self._address, self.connect_timeout, max_packet_size=self.max_packet_size,
            socket_timeout=self.socket_timeout, keepalive=self.socket_keepalive,
            buffer_size=self.socket_buffer,
        )
        probe = self.connect_ping or self.prepost_ping
        if probe and not conn.cping(probe):
            conn.close()
            raise BackendError(f"({self.name}) no cpong from {self.host}:{self.port} "
                               f"within {probe:g} s after connecting")
        return conn

    def _reply(self, conn: AjpConnection, s: ServiceRequest) -> tuple[ServiceResult, AjpConnection | None]:
        """Follow the container's messages until End Response."""
        timeout_ms = self.reply_timeout if s.reply_timeout is None else s.reply_timeout
        reply_timeout = timeout_ms / 1000.0 if timeout_ms > 0 else None
        fail_on_status = s.extensions.fail_on_status or self.fail_on_status
        headers_seen = False
        payload: bytes | None = None
        while True:
            if payload is None:
                try:
                    payload = conn.receive(reply_timeout)
                except ReplyTimeout as e:
                    conn.close()
                    self.reply_timeouts += 1
                    return self._broken(s, Outcome.REPLY_TIMEOUT, 504, headers_seen,
                                        f"({self.name}) timeout waiting for the reply: {e}"), None
                except BackendError as e:
                    conn.close()
                    return self._broken(s, Outcome.BACKEND_ERROR, 502, headers_seen,
                                        f"({self.name}) the connection to the backend broke: {e}"), None
                except AjpProtocolError as e:
                    conn.close()
                    return self._broken(s, Outcome.PROTOCOL_ERROR, 502, headers_seen,
                                        f"({self.name}) the backend's reply is not AJP13: {e}"), None
            try:
                msg = decode_container_message(payload)
            except AjpProtocolError as e:
                conn.close()
                return self._invalid(s, str(e)), None
            payload = None
            kind = type(msg)
            if kind is SendBodyChunk:
                if not headers_seen:
                    if not msg.data:
                        continue  # a flush left over from an earlier response
                    conn.close()
                    return self._invalid(s, "a body chunk before the headers"), None
                data = msg.data
                if data and not s.flush_packets:
                    # Join the chunks that already arrived behind this one: fewer writes.
                    parts = [data]
                    while (payload := conn.buffered()) is not None and payload[:1] == b"\x03":
                        try:
                            chunk = decode_container_message(payload)
                        except AjpProtocolError:
                            break  # reported when its turn comes
                        if not chunk.data:
                            break
                        parts.append(chunk.data)
                        payload = None
                    if len(parts) > 1:
                        data = b"".join(parts)
                try:
                    if data:
                        s.write(data)
                        self.bytes_transferred += len(data)
                    else:
                        s.flush()
                except ClientWriteError as e:
                    conn.close()
                    return self._client_failed(f"writing to the client failed: {e}", 200), None
            elif kind is SendHeaders:
                if headers_seen:
                    conn.close()
                    return self._invalid(s, "a second Send Headers"), None
                if msg.status in fail_on_status or -msg.status in fail_on_status:
                    conn.close()
                    fatal = msg.status in fail_on_status
                    return ServiceResult(
                        Outcome.STATUS_FATAL_ERROR if fatal else Outcome.STATUS_ERROR, 503,
                        not s.body_requested,
                        f"({self.name}) request failed{'' if fatal else ' (soft)'}, because of "
                        f"response status {msg.status}"), None
                headers_seen = True
                try:
                    s.start_response(msg)
                except ClientWriteError as e:
                    conn.close()
                    return self._client_failed(f"writing to the client failed: {e}", 200), None
            elif kind is GetBodyChunk:
                s.body_requested = True
                try:
                    size = min(msg.length, max_body_chunk_size(self.max_packet_size))
                    data = s.read_body(size) if s.has_body_left else b""
                except (ClientReadError, RequestEntityTooLarge) as e:
                    conn.close()
                    return self._client_failed(f"reading the request body failed: {e}", _status_of(e)), None
                try:
                    conn.send(encode_body_chunk(data))
                except BackendError as e:
                    conn.close()
                    return ServiceResult(Outcome.BACKEND_ERROR, 502, False,
                                         f"({self.name}) sending the request body failed: {e}"), None
                self.bytes_read += len(data)
            elif kind is EndResponse:
                if msg.reuse and not s.disable_reuse:
                    return _OK, conn
                conn.close()
                return _OK, None
            else:
                conn.close()
                return self._invalid(s, f"an unexpected {kind.__name__}"), None

    def _client_failed(self, message: str, status: int) -> ServiceResult:
        return ServiceResult(Outcome.CLIENT_ERROR, status, False, f"({self.name}) {message}")

    def _invalid(self, s: ServiceRequest, what: str) -> ServiceResult:
        return ServiceResult(Outcome.SERVER_ERROR, 500, not s.body_requested and not s.r.headers_sent,
                             f"({self.name}) invalid AJP message: {what}")

    def _broken(self, s: ServiceRequest, outcome: Outcome, status: int, headers_seen: bool,
                message: str) -> ServiceResult:
        """The reply broke off; whether a retry is allowed follows recovery_options."""
        opts = self.recovery_options
        recoverable = not s.body_requested
        if not headers_seen:
            if opts & ABORT_IF_TCGETREQUEST:
                recoverable = False
            if not recoverable:
                if opts & ALWAYS_HTTP_HEAD:
                    recoverable = s.r.method == "HEAD" and not s.body_requested
                elif opts & ALWAYS_HTTP_GET:
                    recoverable = s.r.method == "GET" and not s.body_requested
        elif opts & ABORT_IF_TCSENDHEADER:
            recoverable = False
        if s.r.headers_sent:
            recoverable = False  # the client has part of this response; another would corrupt it
        return ServiceResult(outcome, status, recoverable, message)

    # -- maintenance ---------------------------------------------------------------------

    def maintain(self, now: float) -> None:
        """Close pooled connections idle past connection_pool_timeout; CPing those idle past
        connection_ping_interval (ping_mode I). ``now`` is time.monotonic()."""
        ping = self._interval_ping if "I" in self.ping_mode and self.ping_timeout else None
        self.pool.maintain(now, self.pool_timeout, ping, self.ping_interval)

    def _interval_ping(self, conn: AjpConnection) -> bool:
        return conn.cping(self.ping_timeout or 0.0)

    def reset(self, now: float) -> None:
        """Clear the statistics (jkstatus reset)."""
        self.used = self.errors = self.client_errors = self.reply_timeouts = 0
        self.bytes_read = self.bytes_transferred = 0
        self.pool.max_busy = self.pool.busy
        self.last_reset = now

    def close(self) -> None:
        """Close the idle connections (the child is stopping)."""
        self.pool.close_idle()

    def _log(self, level: str, message: str) -> None:
        if self.log is not None:
            self.log.log(level, message)


def _status_of(error: Exception) -> int:
    """The client's status for a failed body read: 413 over LimitRequestBody, else the reader's."""
    return 413 if isinstance(error, RequestEntityTooLarge) else getattr(error, "status", 400)


def _ms(value: int) -> float | None:
    """A mod_jk millisecond setting as seconds; 0 means none."""
    return value / 1000.0 if value > 0 else None
