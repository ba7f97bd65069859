"""Sending small writes of many greenlets at the end of the event loop's turn.

Frames between a child and its session agent, between agents, and the ends of AJP13
responses are small, and the kernel nearly always takes them at once. Those queued during
one turn of the event loop leave together, in one system call per socket, from a callback
of the hub, straight to the OS socket under the gevent one (see :mod:`pyhttpd.socket_direct`):
the greenlets that queued them go on with their work first, instead of each waking its
peer and losing the CPU to it in the middle of the child's batch. Only what the kernel did
not take goes through ``sendall``, which waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyhttpd.socket_direct import os_socket, send_at_once


class BatchSender:
    """Queues bytes for *sock* and sends those of one event loop turn with one call.

    :meth:`send` never blocks: the hub sends at the end of the turn, straight to the OS
    socket; what the kernel does not take then is sent by a greenlet that waits for room,
    and bytes queued meanwhile follow it in order. :meth:`send_now` is for a greenlet
    that must send in order with what is queued. *on_error* gets the OSError of a
    connection that is gone (called from the hub or that greenlet).
    """

    def __init__(self, sock: Any, on_error: Callable[[OSError], None]) -> None:
        from gevent import get_hub

        self._sock = sock
        self._raw = os_socket(sock)
        self._on_error = on_error
        self._out: list[bytes] = []
        self._scheduled = False
        self._draining: Any = None  # the greenlet sending what the kernel did not take
        self._loop = get_hub().loop

    @property
    def busy(self) -> bool:
        """Whether bytes are queued or being sent."""
        return bool(self._out) or self._draining is not None

    def send(self, data: bytes) -> None:
        """Queue *data* to go out at the end of this turn of the event loop."""
        self._out.append(data)
        if not self._scheduled and self._draining is None:
            self._scheduled = True
            self._loop.run_callback(self._flush)

    def send_now(self, data: bytes = b"") -> None:
        """From a greenlet: send what is queued and *data* now, after what is being sent,
        waiting for room up to the socket's timeout (OSError when it fails)."""
        if self._draining is not None:
            self._draining.join()
        out = self._out
        if out:
            out.append(data)
            data = b"".join(out)
            out.clear()
        if not data:
            return
        if self._raw is not None:
            data = send_at_once(self._raw, data)
        if data:
            self._sock.sendall(data)

    def discard(self) -> None:
        """Drop what is queued and stop sending (the connection is being torn down)."""
        self._out.clear()
        if self._draining is not None:
            self._draining.kill()

    def _flush(self) -> None:
        self._scheduled = False
        out = self._out
        if self._draining is not None or not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if self._raw is not None:
            try:
                data = send_at_once(self._raw, data)
            except OSError as exc:
                self._on_error(exc)
                return
            if not data:
                return
        from gevent import spawn

        self._draining = spawn(self._drain, data)

    def _drain(self, rest: Any) -> None:
        try:
            while rest:
                self._sock.sendall(rest)
                rest = b"".join(self._out)
                self._out.clear()
        except OSError as exc:
            self._on_error(exc)
        finally:
            self._draining = None
