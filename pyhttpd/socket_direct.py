"""Sending straight to the OS socket under a gevent socket.

A gevent socket's send goes through its waiting machinery even when the kernel takes the
data at once, which it does for nearly every response and packet. The non-blocking OS
socket underneath takes it directly; only what it leaves needs the gevent socket's sendall,
which waits for room up to the socket's timeout.
"""

from __future__ import annotations

import socket
from typing import Any


def os_socket(sock: socket.socket) -> Any:
    """The non-blocking OS socket under a gevent socket (None for any other socket)."""
    cls = type(sock)
    if cls.__name__ == "socket" and cls.__module__ == "gevent._socket3":  # not its SSLSocket
        raw = getattr(sock, "_sock", None)
        if raw is not None and raw.gettimeout() == 0.0:
            return raw
    return None


def send_at_once(raw: socket.socket, data: bytes | memoryview, flags: int = 0) -> bytes | memoryview:
    """Send what the OS socket ``raw`` takes now; returns what is left (empty when all went)."""
    try:
        sent = raw.send(data, flags)
    except BlockingIOError:
        return data
    return memoryview(data)[sent:]
