"""Who is in the cluster and how each member is doing.

Members come from ``ClusterMember`` lines (static) or from multicast
heartbeats (discovered).  A member is known by its cluster address until its
HELLO names it; its id is its route.  Its state is worked out from facts the
agent records, with Tomcat's static-membership timings:

- **alive**: this node's link to it is up and something arrived from it in
  the last ``SUSPECT_AFTER`` seconds, and no acknowledgement from it is overdue;
- **suspected**: heard from within ``drop_time`` but not alive (silent, link
  down for a moment, or it missed an acknowledgement);
- **gone**: not heard from for ``drop_time`` seconds, or never.

Suspected members still get every change but sync commits stop waiting for
them; gone members get nothing until they come back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .settings import Address, format_address

SUSPECT_AFTER = 3.0
STATIC_DROP_TIME = 5.0  # Tomcat's StaticMembershipService expirationTime
MULTICAST_DROP_TIME = 3.0  # Tomcat's McastService dropTime


@dataclass(eq=False)
class Member:
    """One other node of the cluster, as this node sees it (compared by identity)."""

    address: Address
    static: bool = True
    drop_time: float = STATIC_DROP_TIME
    id: str | None = None
    incarnation: int | None = None
    started: int | None = None  # ms since the epoch when its agent started: orders donors
    outbound: Any = None  # the PeerLink this node sends on
    inbound: Any = None  # the PeerLink the member sends on
    last_heard: float | None = None  # monotonic: a HELLO or heartbeat; links keep their own
    last_ack_timeout: float | None = None  # monotonic
    tried: bool = False  # a first connection attempt has ended one way or the other
    auth_failures: int = 0
    last_error: str = ""
    restarts: int = 0  # incarnations seen after the first
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The member's id, or its address before its HELLO arrived."""
        return self.id or format_address(self.address)

    @property
    def connected(self) -> bool:
        """Whether this node's link to the member is up and past the handshake."""
        link = self.outbound
        return link is not None and link.ready.is_set() and not link.closed.is_set()

    def heard(self, now: float) -> None:
        """Record an authentic HELLO or heartbeat from the member."""
        self.last_heard = now

    def heard_at(self) -> float | None:
        """When anything authentic last arrived from the member (monotonic), or None."""
        heard = self.last_heard
        for link in (self.outbound, self.inbound):
            if link is not None and link.ready.is_set() and (heard is None or link.last_received > heard):
                heard = link.last_received
        return heard

    def ack_timed_out(self, now: float) -> None:
        """Record an acknowledgement that did not come in time."""
        self.last_ack_timeout = now

    def announce(self, member_id: str, incarnation: int, started: int) -> bool:
        """Take the identity from a HELLO or heartbeat; True when it is a new incarnation."""
        restarted = self.incarnation is not None and incarnation != self.incarnation
        if restarted:
            self.restarts += 1
        self.id, self.incarnation, self.started = member_id, incarnation, started
        return restarted

    def state(self, now: float) -> str:
        """``alive``, ``suspected`` or ``gone`` (see the module docstring)."""
        heard = self.heard_at()
        if heard is None:
            return "gone"
        quiet = now - heard
        overdue = self.last_ack_timeout is not None and now - self.last_ack_timeout < SUSPECT_AFTER
        if self.connected and quiet < SUSPECT_AFTER and not overdue:
            return "alive"
        if quiet < self.drop_time:
            return "suspected"
        return "gone"

    def status(self, now: float) -> dict[str, Any]:
        """The member's line on the status page, as JSON types."""
        link = self.outbound
        heard = self.heard_at()
        return {
            "id": self.id,
            "address": format_address(self.address),
            "state": self.state(now),
            "static": self.static,
            "last_seen": None if heard is None else time.time() - (now - heard),
            "incarnation": self.incarnation,
            "started": self.started,
            "queue": link.queue_length if link is not None else 0,
            "unanswered": link.unanswered if link is not None else 0,
            "lag_p50_ms": link.lag.percentile(50) if link is not None else None,
            "lag_p99_ms": link.lag.percentile(99) if link is not None else None,
            "auth_failures": self.auth_failures,
            "restarts": self.restarts,
            "last_error": self.last_error,
            **self.counters,
        }


class Membership:
    """The members of the cluster other than this node, by address."""

    def __init__(self, local: Address | None, static: tuple[Address, ...] = ()) -> None:
        self.local = local
        self._members: dict[Address, Member] = {}
        for address in static:
            if address != local:
                self._members[address] = Member(address, static=True)

    def __iter__(self) -> Iterator[Member]:
        return iter(list(self._members.values()))

    def __len__(self) -> int:
        return len(self._members)

    def get(self, address: Address) -> Member | None:
        """The member at *address*, if known."""
        return self._members.get(address)

    def by_id(self, member_id: str) -> Member | None:
        """The member that announced *member_id*, if any."""
        for member in self._members.values():
            if member.id == member_id:
                return member
        return None

    def discover(self, address: Address) -> Member:
        """The member at *address*, added as a discovered (multicast) one if new."""
        member = self._members.get(address)
        if member is None:
            member = self._members[address] = Member(
                address, static=False, drop_time=MULTICAST_DROP_TIME
            )
        return member

    def forget_silent(self, now: float) -> list[Member]:
        """Remove discovered members gone silent longer than their drop time; return them."""
        dropped = [
            m
            for m in self._members.values()
            if not m.static and (m.heard_at() is None or now - m.heard_at() >= m.drop_time)
        ]
        for member in dropped:
            del self._members[member.address]
        return dropped

    def connected(self) -> list[Member]:
        """Members this node can send to right now."""
        return [m for m in self._members.values() if m.connected]

    def donors(self, now: float) -> list[Member]:
        """Connected members oldest first: the order to ask for a state transfer."""
        return sorted(
            (m for m in self._members.values() if m.connected and m.started is not None),
            key=lambda m: (m.started, m.id or ""),
        )

    def settled(self) -> bool:
        """Whether every static member has been tried once (connected or failed)."""
        return all(m.tried for m in self._members.values() if m.static)

    def status(self, now: float) -> list[dict[str, Any]]:
        """Every member's status line, ordered by address."""
        return [self._members[a].status(now) for a in sorted(self._members)]
