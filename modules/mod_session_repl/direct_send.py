"""Sending on a gevent socket straight through the OS socket under it.

gevent's ``sendall`` asks the kernel for SO_SNDBUF, reads the clock and loops
in Python on every call.  Frames between a child and its agent, or between
agents, are small and the kernel nearly always takes them at once, so they go
to the non-blocking OS socket first and through ``sendall`` (which waits)
only for what did not fit.
"""

from __future__ import annotations

from typing import Any


class DirectSender:
    """``send_all(data)`` on *sock*, a gevent socket (any other socket just uses sendall)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        raw = getattr(sock, "_sock", None) if type(sock).__module__.startswith("gevent.") else None
        self._raw = raw if raw is not None and raw.gettimeout() == 0.0 else None

    def send_all(self, data: bytes) -> None:
        """Send every byte of *data*; raises OSError if the connection is gone."""
        raw = self._raw
        if raw is not None:
            try:
                sent = raw.send(data)
            except BlockingIOError:
                sent = 0
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        self.sock.sendall(data)
