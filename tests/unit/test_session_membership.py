"""Member states, heartbeats, lag percentiles and the status page, without sockets."""

from __future__ import annotations

import pytest

from modules.mod_session_repl.membership import (
    MULTICAST_DROP_TIME,
    SUSPECT_AFTER,
    Member,
    Membership,
)
from modules.mod_session_repl.multicast import heartbeat_frame, read_heartbeat
from modules.mod_session_repl.peer import LagTracker, percentile
from modules.mod_session_repl.status import render_auto, render_html, render_page
from modules.mod_session_repl.wire import AuthError, FrameWriter, MessageType, WireError

SECRET = b"k" * 32


class FakeLink:
    """What Member reads of a PeerLink."""

    def __init__(self, last_received: float, up: bool = True) -> None:
        class Flag:
            def __init__(self, value: bool) -> None:
                self.value = value

            def is_set(self) -> bool:
                return self.value

        self.ready = Flag(up)
        self.closed = Flag(not up)
        self.last_received = last_received
        self.queue_length = 2
        self.unanswered = 1
        self.lag = LagTracker()


def test_a_member_never_heard_from_is_gone():
    assert Member(("127.0.0.1", 4001)).state(100.0) == "gone"


def test_a_connected_member_heard_recently_is_alive():
    member = Member(("127.0.0.1", 4001), outbound=FakeLink(99.0))
    assert member.state(100.0) == "alive"


def test_a_silent_or_disconnected_member_is_suspected_then_gone():
    member = Member(("127.0.0.1", 4001), outbound=FakeLink(100.0))
    assert member.state(100.0 + SUSPECT_AFTER + 0.1) == "suspected"
    member.outbound = None
    member.heard(100.0)
    assert member.state(101.0) == "suspected"
    assert member.state(100.0 + member.drop_time) == "gone"


def test_a_missed_acknowledgement_makes_a_member_suspected_for_a_while():
    member = Member(("127.0.0.1", 4001), outbound=FakeLink(100.0))
    member.ack_timed_out(100.0)
    assert member.state(100.5) == "suspected"
    member.outbound.last_received = 104.0
    assert member.state(104.0) == "alive"


def test_a_new_incarnation_counts_as_a_restart():
    member = Member(("127.0.0.1", 4001))
    assert member.announce("node2", 7, 1000) is False
    assert member.announce("node2", 7, 1000) is False
    assert member.announce("node2", 8, 2000) is True
    assert (member.restarts, member.started) == (1, 2000)


def test_the_oldest_connected_member_is_the_first_donor():
    members = Membership(("127.0.0.1", 4000), (("127.0.0.1", 4000), ("127.0.0.1", 4001), ("127.0.0.1", 4002)))
    assert len(members) == 2  # this node's own address is not a member
    young, old = members.get(("127.0.0.1", 4001)), members.get(("127.0.0.1", 4002))
    young.announce("node2", 1, 2000)
    old.announce("node3", 2, 1000)
    young.outbound, old.outbound = FakeLink(0.0), FakeLink(0.0)
    assert [m.id for m in members.donors(0.0)] == ["node3", "node2"]
    old.outbound = None
    assert [m.id for m in members.donors(0.0)] == ["node2"]


def test_discovered_members_are_forgotten_after_the_drop_time_static_ones_are_kept():
    members = Membership(("10.0.0.1", 4000), (("10.0.0.9", 4000),))
    found = members.discover(("10.0.0.2", 4000))
    assert members.discover(("10.0.0.2", 4000)) is found
    found.heard(10.0)
    assert members.forget_silent(10.0 + MULTICAST_DROP_TIME - 0.1) == []
    assert members.forget_silent(10.0 + MULTICAST_DROP_TIME) == [found]
    assert [m.address for m in members] == [("10.0.0.9", 4000)]


def test_heartbeats_are_authenticated_and_fresh():
    data = heartbeat_frame(FrameWriter("node2", SECRET), "pyhttpd", "10.0.0.2:4000", 5, 1000, now=50.0)
    frame = read_heartbeat(data, SECRET, "pyhttpd", now=51.0)
    assert (frame.type, frame.sender, frame.body["address"]) == (MessageType.HEARTBEAT, "node2", "10.0.0.2:4000")
    with pytest.raises(AuthError):
        read_heartbeat(data, b"x" * 32, "pyhttpd", now=51.0)
    with pytest.raises(WireError, match="timestamp"):
        read_heartbeat(data, SECRET, "pyhttpd", now=500.0)
    with pytest.raises(WireError, match="cluster"):
        read_heartbeat(data, SECRET, "other", now=51.0)


def test_a_heartbeat_replayed_on_a_connection_is_refused():
    from modules.mod_session_repl.wire import FrameError, FrameReader

    writer = FrameWriter("node2", SECRET)
    reader = FrameReader(SECRET, nonce=b"n" * 16)
    hello = {
        "cluster": "pyhttpd", "address": "10.0.0.2:4000", "incarnation": 1, "started": 1,
        "nonce": "00" * 16, "ts": 1,
    }  # fmt: skip
    reader.feed(writer.encode(MessageType.HELLO, hello))
    beat = heartbeat_frame(writer, "pyhttpd", "10.0.0.2:4000", 1, 1, now=1.0)
    with pytest.raises(FrameError, match="multicast datagram"):
        reader.feed(beat)


def test_lag_percentiles_are_nearest_rank():
    assert percentile([], 50) is None
    lag = LagTracker(size=3)
    for ms in (9.0, 1.0, 5.0, 7.0):  # the oldest falls out
        lag.add(ms)
    assert lag.samples() == [1.0, 5.0, 7.0]
    assert (lag.percentile(50), lag.percentile(99), lag.percentile(0)) == (5.0, 7.0, 1.0)


STATUS = {
    "member": "node1",
    "route": "node1",
    "ready": True,
    "replication": "delta",
    "mode": "sync",
    "listen": "127.0.0.1:4001",
    "multicast": None,
    "incarnation": 1,
    "started": 1000.0,
    "pid": 42,
    "transfer": {"state": "done", "donor": "node2", "sessions": 3, "chunks": 1, "seconds": 0.01},
    "sessions": {"sessions": 3, "primary": 2, "backup": 1, "bytes": 2048, "tombstones": 0},
    "members": [
        {
            "id": "node2", "address": "127.0.0.1:4002", "state": "alive", "static": True,
            "last_seen": 1999.5, "incarnation": 3, "started": 900, "queue": 0, "unanswered": 0,
            "lag_p50_ms": 0.4, "lag_p99_ms": 1.5, "auth_failures": 0, "restarts": 0, "last_error": "",
        },
        {
            "id": None, "address": "127.0.0.1:4003", "state": "gone", "static": True,
            "last_seen": None, "incarnation": None, "started": None, "queue": 0, "unanswered": 0,
            "lag_p50_ms": None, "lag_p99_ms": None, "auth_failures": 4, "restarts": 0,
            "last_error": "bad HMAC tag: <wrong>",
        },
    ],
    "counters": {"commits": 12},
    "lag_p50_ms": 0.4,
    "lag_p99_ms": 1.5,
}  # fmt: skip


def test_the_status_page_shows_every_member_with_state_last_seen_queue_and_lag():
    text = render_html(STATUS, now=2000.0)
    assert "Node node1 (ready), replication delta sync" in text
    assert "<td>node2</td><td>127.0.0.1:4002</td><td>alive</td><td>0.5 s ago</td>" in text
    assert "<td>0.40 ms</td><td>1.50 ms</td>" in text
    assert "<td>?</td><td>127.0.0.1:4003</td><td>gone</td><td>never</td>" in text
    assert "bad HMAC tag: &lt;wrong&gt;" in text  # escaped
    assert "State transfer: done from node2, 3 sessions in 0.01 s" in text
    assert render_page(STATUS).startswith("<!DOCTYPE")


def test_the_auto_status_has_one_line_per_fact():
    lines = render_auto(STATUS, now=2000.0).splitlines()
    assert "SessionNode: node1" in lines and "Sessions: 3" in lines and "SessionLagP99Ms: 1.5" in lines
    assert (
        "ClusterMember node2: state=alive address=127.0.0.1:4002 last_seen_s=0.5 queue=0 "
        "unacked=0 lag_p50_ms=0.4 lag_p99_ms=1.5 auth_failures=0"
    ) in lines
    assert any(line.startswith("ClusterMember 127.0.0.1:4003: state=gone") for line in lines)
    assert "SessionCounter commits: 12" in lines


def test_the_redis_status_says_whether_redis_answers():
    up = {"store": "redis://h:1/0", "reachable": True, "ping_ms": 0.2, "keys": 5}
    down = {"store": "redis://h:1/0", "reachable": False, "error": "refused"}
    assert "SessionStoreKeys: 5" in render_auto(up)
    assert "SessionStoreError: refused" in render_auto(down)
    assert "<b>unreachable</b>: refused" in render_html(down)
