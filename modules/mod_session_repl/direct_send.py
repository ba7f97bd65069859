"""Sending many small frames from many greenlets on one gevent socket.

Frames between a child and its agent, or between agents, are small and the
kernel nearly always takes them at once, so those queued during one turn of
the event loop leave together, in one system call, from a callback of the hub,
straight to the OS socket under the gevent one (see :mod:`pyhttpd.socket_direct`);
only what did not fit goes through ``sendall``, which waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from gevent.hub import get_hub

from pyhttpd.socket_direct import os_socket, send_at_once


class BatchSender:
    """Queues frames for *sock* and sends those of one event loop turn with one call.

    :meth:`send` never blocks: the hub sends at the end of the turn, straight to
    the OS socket; what the kernel does not take then is sent by a greenlet that
    waits for room, and frames queued meanwhile follow it in order.  *on_error*
    gets the OSError of a connection that is gone (called from the hub or that
    greenlet).
    """

    def __init__(self, sock: Any, on_error: Callable[[OSError], None]) -> None:
        self._sock = sock
        self._raw = os_socket(sock)
        self._on_error = on_error
        self._out: list[bytes] = []
        self._scheduled = False
        self._draining = False
        self._loop = get_hub().loop

    def send(self, data: bytes) -> None:
        """Queue *data* to go out at the end of this turn of the event loop."""
        self._out.append(data)
        if not self._scheduled and not self._draining:
            self._scheduled = True
            self._loop.run_callback(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        out = self._out
        if self._draining or not out:
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
        self._draining = True
        gevent.spawn(self._drain, data)

    def _drain(self, rest: Any) -> None:
        try:
            while True:
                self._sock.sendall(rest)
                if not self._out:
                    return
                rest = b"".join(self._out)
                self._out.clear()
        except OSError as exc:
            self._on_error(exc)
        finally:
            self._draining = False
