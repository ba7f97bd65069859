"""Multicast discovery (``ClusterMulticast``): heartbeats as Tomcat's McastService sends.

Every ``HEARTBEAT_INTERVAL`` the agent sends one datagram to the group: a
HEARTBEAT frame (see :mod:`.wire`) tagged with the cluster secret, naming the
member, its cluster address, incarnation and start time.  A datagram that fails
the HMAC or whose timestamp is off by more than ``HEARTBEAT_SKEW`` is dropped.
Heartbeats only tell the agent whom to connect to; session data always goes
over the authenticated TCP links.

The socket joins the group on the interface of ``ClusterListen``'s address
and sends with a TTL of 1, so heartbeats never leave the local network.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent import socket as gsocket

from .settings import Address
from .wire import Frame, FrameReader, FrameWriter, MessageType, WireError

HEARTBEAT_INTERVAL = 0.5  # Tomcat's frequency
HEARTBEAT_SKEW = 10.0


def heartbeat_frame(
    writer: FrameWriter, cluster: str, address: str, incarnation: int, started: int, now: float
) -> bytes:
    """One heartbeat datagram."""
    return writer.encode(
        MessageType.HEARTBEAT,
        {
            "cluster": cluster,
            "address": address,
            "incarnation": incarnation,
            "started": started,
            "ts": int(now * 1000),
        },
    )


def read_heartbeat(
    data: bytes, secret: bytes, cluster: str, now: float, previous_secret: bytes | None = None
) -> Frame:
    """The heartbeat in one datagram; WireError if it is not an authentic, fresh one."""
    frames = FrameReader(secret, previous_secret=previous_secret).feed(data)
    if len(frames) != 1 or frames[0].type is not MessageType.HEARTBEAT:
        raise WireError("datagram is not exactly one HEARTBEAT")
    frame = frames[0]
    if frame.body["cluster"] != cluster:
        raise WireError(f"heartbeat of cluster {frame.body['cluster']!r}")
    if abs(now - frame.body["ts"] / 1000) > HEARTBEAT_SKEW:
        raise WireError("heartbeat timestamp too far from this node's clock")
    return frame


class MulticastService:
    """Sends this member's heartbeats and hands the others' to *on_heartbeat*.

    *on_reject* hears about datagrams that failed the checks (source, error).
    """

    def __init__(
        self,
        group: Address,
        interface: str,
        *,
        local_id: str,
        secret: bytes,
        cluster: str,
        address: str,
        incarnation: int,
        started: int,
        on_heartbeat: Callable[[Frame], None],
        on_reject: Callable[[str, WireError], None],
    ) -> None:
        self.group = group
        self.interface = interface if interface not in ("", "0.0.0.0") else "0.0.0.0"
        self._writer = FrameWriter(local_id, secret)
        self._secret = secret
        self._cluster = cluster
        self._address = address
        self._incarnation = incarnation
        self._started = started
        self._local_id = local_id
        self._on_heartbeat = on_heartbeat
        self._on_reject = on_reject
        self._sock: Any = None
        self._greenlets: list[gevent.Greenlet] = []
        self.sent = 0
        self.received = 0

    def start(self) -> None:
        """Join the group and start sending and receiving."""
        group, port = self.group
        sock = gsocket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((group, port))
        membership = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(self.interface))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if self.interface != "0.0.0.0":
            sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.interface)
            )
        self._sock = sock
        self._greenlets = [gevent.spawn(self._send_loop), gevent.spawn(self._receive_loop)]

    def stop(self) -> None:
        """Stop and leave the group."""
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send_loop(self) -> None:
        while True:
            data = heartbeat_frame(
                self._writer,
                self._cluster,
                self._address,
                self._incarnation,
                self._started,
                time.time(),
            )
            try:
                self._sock.sendto(data, self.group)
                self.sent += 1
            except OSError as exc:
                self._on_reject("send", WireError(f"cannot send heartbeat: {exc.strerror or exc}"))
            gevent.sleep(HEARTBEAT_INTERVAL)

    def _receive_loop(self) -> None:
        while True:
            try:
                data, source = self._sock.recvfrom(65536)
            except OSError:
                return
            try:
                frame = read_heartbeat(data, self._secret, self._cluster, time.time())
            except WireError as exc:
                self._on_reject(f"{source[0]}:{source[1]}", exc)
                continue
            if frame.sender == self._local_id and frame.body["incarnation"] == self._incarnation:
                continue
            self.received += 1
            self._on_heartbeat(frame)
