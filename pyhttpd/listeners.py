"""Listening sockets: the master binds every Listen once and keeps them across restarts.

As httpd's listen.c does, a restart re-reads the Listen lines and hands over the already
open socket of every address that is still configured, so the kernel keeps queueing
connections while one generation of children replaces another: nothing is refused. Only
addresses that vanished from the configuration are closed.

Every socket has SO_REUSEADDR (a restarted server binds at once) and TCP_NODELAY, which
Linux passes on to accepted connections: small responses are not held back by Nagle's
algorithm waiting for the client's delayed ACK.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from pyhttpd.core import Listen


class ListenError(Exception):
    """A Listen address could not be bound; the message names file, line and address."""


@dataclass
class Listener:
    """One bound, listening socket and the Listen line it serves."""

    listen: Listen
    sock: socket.socket

    @property
    def key(self) -> tuple[str, int]:
        return (self.listen.host, self.listen.port)

    def fileno(self) -> int:
        return self.sock.fileno()


def open_listeners(
    listens: list[Listen], backlog: int, running: list[Listener] | None = None
) -> tuple[list[Listener], list[Listener]]:
    """Bind every Listen, reusing the open socket of an address already in `running`.

    Returns (listeners for `listens`, listeners of `running` no longer configured); the
    caller closes the second list once the new generation is in place. Raises ListenError
    (after closing what it opened) when an address cannot be bound.
    """
    by_key = {listener.key: listener for listener in running or ()}
    result: list[Listener] = []
    opened: list[Listener] = []
    try:
        for listen in listens:
            old = by_key.pop((listen.host, listen.port), None)
            if old is not None:
                old.sock.listen(backlog)  # ListenBacklog may have changed
                result.append(Listener(listen, old.sock))
                continue
            listener = Listener(listen, _bind(listen, backlog))
            opened.append(listener)
            result.append(listener)
    except ListenError:
        close_listeners(opened)
        raise
    return result, list(by_key.values())


def close_listeners(listeners: list[Listener]) -> None:
    """Close the sockets (children that inherited them keep their own copies)."""
    for listener in listeners:
        listener.sock.close()


def _bind(listen: Listen, backlog: int) -> socket.socket:
    try:
        family, address = _address(listen)
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as e:
        raise ListenError(f"{listen.file}:{listen.line}: Listen: {listen.address}: {e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if family == socket.AF_INET6:
            # "Listen 80" takes IPv4 too; an explicit IPv6 address only IPv6.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if listen.host else 0)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise ListenError(
            f"{listen.file}:{listen.line}: Listen: could not bind to address {listen.address}: "
            f"{e.strerror or e}"
        ) from None
    return sock


def _address(listen: Listen) -> tuple[socket.AddressFamily, tuple]:
    if not listen.host:
        if socket.has_ipv6 and _ipv6_works():
            return socket.AF_INET6, ("::", listen.port)
        return socket.AF_INET, ("0.0.0.0", listen.port)
    infos = socket.getaddrinfo(
        listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, _, _, _, address = infos[0]
    return family, address


def _ipv6_works() -> bool:
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True
