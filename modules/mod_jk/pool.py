"""AJP13 connections to one backend and the per-child pool that keeps them (mod_jk's
endpoint cache, ``jk_ajp_common.c``).

A child holds at most ``connection_pool_size`` connections to a backend, one per request
in flight; an idle one waits in the pool for the next request. Requests take the most
recently used idle connection first, so surplus ones age and are closed by maintenance
(``connection_pool_timeout``), down to ``connection_pool_minsize``.

The child is monkey-patched for gevent after the master loaded this module, so sockets
come from ``socket.create_connection`` at call time and the pool's semaphore is created
in the process that uses it: gevent's own where threading is patched (the threading
module's, written in Python over a Condition, costs several times more per request).
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from pyhttpd.socket_direct import os_socket, send_at_once

from .ajp13 import (
    MAGIC_TO_SERVER,
    AjpProtocolError,
    CPong,
    PacketReader,
    decode_container_message,
    encode_cping,
)

RECV_SIZE = 256 * 1024
# One receive buffer for a gevent child (see AjpConnection._recv).
_RECV_BUFFER = bytearray(RECV_SIZE)
_RECV_VIEW = memoryview(_RECV_BUFFER)

_pid = os.getpid()  # this process's, kept current across forks without a syscall per request


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class BackendError(Exception):
    """Connecting to, sending to or receiving from the backend failed."""


class ReplyTimeout(BackendError):
    """The backend sent nothing within reply_timeout."""


def resolve(host: str, port: int, prefer_ipv6: bool = False) -> tuple[str, int]:
    """The address to connect to: IPv4 first unless ``prefer_ipv6``, as mod_jk's jk_resolve."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except OSError as e:
        raise BackendError(f"cannot resolve {host}: {e}") from None
    preferred = socket.AF_INET6 if prefer_ipv6 else socket.AF_INET
    infos.sort(key=lambda info: info[0] != preferred)
    return infos[0][4][:2]


class AjpConnection:
    """One TCP connection to an AJP13 container, framed by the codec's PacketReader.

    On a gevent socket the bytes go straight to and from the OS socket when the kernel
    has them (or takes them) at once; only a wait goes through the hub, on a read watcher
    of the connection's own when no timeout bounds it, else through gevent's socket.
    """

    __slots__ = ("sock", "raw", "reader", "last_used", "socket_timeout", "_timeout", "_poll", "_watcher")

    def __init__(self, sock: socket.socket, max_packet_size: int, socket_timeout: float | None) -> None:
        self.sock = sock
        self.raw = os_socket(sock)
        self.reader = PacketReader(MAGIC_TO_SERVER, max_packet_size)
        self.last_used = time.monotonic()
        self.socket_timeout = socket_timeout
        self._timeout = sock.gettimeout()
        self._poll: Any = None  # see is_connected
        self._watcher: tuple[Any, Any] | None = None  # the hub and a read watcher, see _recv

    def _settimeout(self, timeout: float | None) -> None:
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    @classmethod
    def open(
        cls,
        address: tuple[str, int],
        connect_timeout: float | None,
        *,
        max_packet_size: int,
        socket_timeout: float | None = None,
        keepalive: bool = False,
        buffer_size: int = 0,
    ) -> AjpConnection:
        """Connect within ``connect_timeout`` seconds (None: the system's); raise BackendError."""
        try:
            sock = socket.create_connection(address, timeout=connect_timeout)
        except OSError as e:
            raise BackendError(f"connecting to {address[0]}:{address[1]} failed: {_reason(e)}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if keepalive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if buffer_size > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_size)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
        return cls(sock, max_packet_size, socket_timeout)

    def send(self, data: bytes) -> None:
        """Send whole packets; raise BackendError."""
        try:
            if self.raw is not None:
                data = send_at_once(self.raw, data)
                if not data:
                    return
            self._settimeout(self.socket_timeout)
            self.sock.sendall(data)
        except OSError as e:
            raise BackendError(f"sending to the backend failed: {_reason(e)}") from None

    def buffered(self) -> bytes | None:
        """The next payload already received, without waiting for more."""
        return self.reader.next_packet()

    def receive(self, reply_timeout: float | None) -> bytes:
        """The next payload from the backend.

        The wait for a packet to begin is bounded by ``reply_timeout`` (ReplyTimeout), the
        rest of it by socket_timeout (BackendError). A closed connection is a BackendError;
        bytes that are not AJP13 raise AjpProtocolError.
        """
        reader = self.reader
        while (payload := reader.next_packet()) is None:
            started = reader.pending > 0
            try:
                data = self._recv(self.socket_timeout if started or reply_timeout is None else reply_timeout)
            except TimeoutError:
                if started or reply_timeout is None:
                    raise BackendError("timeout reading from the backend") from None
                raise ReplyTimeout(f"no reply within {reply_timeout:g} s") from None
            except OSError as e:
                raise BackendError(f"reading from the backend failed: {_reason(e)}") from None
            if not data:
                raise BackendError("the backend closed the connection")
            reader.feed(data)
        return payload

    def _recv(self, timeout: float | None) -> bytes | memoryview:
        """The bytes there are, waiting at most ``timeout`` seconds for them (TimeoutError),
        None: as long as it takes.

        On a gevent socket they are received into the child's buffer, a view of which is
        returned: the reader copies them before the greenlet can yield (the child's other
        threads are greenlets, so nothing else can write the buffer meanwhile).
        """
        raw = self.raw
        if raw is None:
            self._settimeout(timeout)
            return self.sock.recv(RECV_SIZE)
        try:
            return _RECV_VIEW[: raw.recv_into(_RECV_BUFFER)]
        except BlockingIOError:
            pass
        if timeout is None:
            watcher = self._watcher
            if watcher is None:
                from gevent import get_hub

                hub = get_hub()
                watcher = self._watcher = (hub, hub.loop.io(raw.fileno(), 1))
            while True:
                watcher[0].wait(watcher[1])
                try:
                    return _RECV_VIEW[: raw.recv_into(_RECV_BUFFER)]
                except BlockingIOError:
                    pass
        self._settimeout(timeout)
        return _RECV_VIEW[: self.sock.recv_into(_RECV_BUFFER)]

    def is_connected(self) -> bool:
        """False when the peer closed the connection while it sat idle (or left data on it)."""
        poll = self._poll
        if poll is None:
            poll = self._poll = _os_poll()
            poll.register(self.sock.fileno(), select.POLLIN)
        # Readable: EOF, an error, or stray bytes of a response nobody read; either way unusable.
        return not poll.poll(0)

    def cping(self, timeout: float) -> bool:
        """Send a CPing and wait ``timeout`` seconds for the CPong."""
        try:
            self.send(encode_cping())
            return isinstance(decode_container_message(self.receive(timeout)), CPong)
        except (BackendError, AjpProtocolError):
            return False

    def close(self) -> None:
        if self._watcher is not None:  # before the descriptor can be reused
            self._watcher[1].close()
            self._watcher = None
        try:
            self.sock.close()
        except OSError:
            pass


def _reason(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


class ConnectionPool:
    """A child's connections to one backend: at most ``size`` in use, idle ones kept for reuse."""

    def __init__(self, size: int, min_size: int) -> None:
        self.size = size
        self.min_size = min_size
        self.idle: list[AjpConnection] = []  # most recently used last
        self.busy = 0
        self.max_busy = 0
        self._slots: Any = None
        self._pid = 0

    def _semaphore(self) -> Any:
        # Created in the process (and after the monkey-patching) that uses it.
        if self._slots is None or self._pid != _pid:
            self._slots = _bounded_semaphore(self.size)
            self._pid = _pid
            self.idle = []
            self.busy = 0
        return self._slots

    def acquire(self, timeout: float) -> bool:
        """Take a slot for one request, waiting up to ``timeout`` seconds; False if none came free."""
        slots = self._semaphore()
        got = slots.acquire(timeout=timeout) if timeout > 0 else slots.acquire(blocking=False)
        if not got:
            return False
        self.busy += 1
        self.max_busy = max(self.max_busy, self.busy)
        return True

    def release(self, conn: AjpConnection | None) -> None:
        """Give the slot back, and ``conn`` (when it may be reused) to the idle connections."""
        if conn is not None:
            conn.last_used = time.monotonic()
            self.idle.append(conn)
        self.busy -= 1
        self._semaphore().release()

    def pop_idle(self) -> AjpConnection | None:
        """The most recently used idle connection, or None."""
        return self.idle.pop() if self.idle else None

    @property
    def connected(self) -> int:
        """Idle connections held (those in use are counted by ``busy``)."""
        return len(self.idle)

    def maintain(self, now: float, idle_timeout: float, ping: Callable[[AjpConnection], bool] | None,
                 ping_interval: float) -> int:
        """Close connections idle longer than ``idle_timeout`` (0: keep them), keeping
        ``min_size``; CPing (``ping``) those idle longer than ``ping_interval`` and close the
        ones that fail. Returns how many were closed. ``now`` is time.monotonic()."""
        closed = 0
        if idle_timeout > 0:
            # The oldest are first; keep the newest min_size whatever their age.
            keep_from = max(len(self.idle) - self.min_size, 0)
            stale = [c for c in self.idle[:keep_from] if now - c.last_used > idle_timeout]
            for conn in stale:
                self.idle.remove(conn)
                conn.close()
                closed += 1
        if ping is not None and ping_interval > 0:
            due = [c for c in self.idle if now - c.last_used > ping_interval]
            for conn in due:
                self.idle.remove(conn)  # out of reach of requests while it is probed
                if ping(conn):
                    conn.last_used = time.monotonic()
                    self.idle.append(conn)
                else:
                    conn.close()
                    closed += 1
        return closed

    def close_idle(self) -> None:
        """Close every idle connection (child exit)."""
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


def _os_poll() -> Any:
    """A poll object of the OS, not gevent's cooperative one (a look that never waits)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey.get_original("select", "poll")() if monkey is not None else select.poll()


def _bounded_semaphore(size: int) -> Any:
    """A BoundedSemaphore for the threads this process runs: gevent's for greenlets."""
    if "gevent.monkey" in sys.modules and sys.modules["gevent.monkey"].is_module_patched("threading"):
        from gevent.lock import BoundedSemaphore

        return BoundedSemaphore(size)
    return threading.BoundedSemaphore(size)
