"""Session agents of several nodes in one process, on loopback: replication, transfer, membership."""

from __future__ import annotations

import socket
import time

import gevent
import pytest
from gevent import socket as gsocket

from modules.mod_session_repl import agent as agent_module
from modules.mod_session_repl.agent import SessionAgent
from modules.mod_session_repl.backend import SessionTooLarge
from modules.mod_session_repl.client import AgentClient
from modules.mod_session_repl.peer import PeerLink
from modules.mod_session_repl.session import Session
from modules.mod_session_repl.session_id import new_session_id
from modules.mod_session_repl.settings import ClusterSettings
from modules.mod_session_repl.wire import FrameReader, FrameWriter, MessageType
from tests.peers.ports import free_port

SECRET = b"k" * 32
WRONG = b"w" * 32


class Node:
    """One agent with its client, plus the log lines it wrote."""

    def __init__(self, tmp_path, route, port, member_ports, **overrides):
        self.route = route
        self.port = port
        self.logs: list[tuple[str, str]] = []
        values = dict(
            route=route,
            replication="delta",
            sync=True,
            route_rebind=True,
            listen=("127.0.0.1", port),
            members=tuple(("127.0.0.1", p) for p in member_ports if p != port),
            multicast=None,
            secret=SECRET,
            state_transfer_timeout=10.0,
            max_inactive=1800,
            agent_socket=str(tmp_path / f"{route}-{port}.sock"),
        )
        values.update(overrides)
        self.settings = ClusterSettings(**values)
        self.agent = SessionAgent(self.settings, lambda level, msg: self.logs.append((level, msg)))
        self.client = AgentClient(self.settings.agent_socket, timeout=20, connect_wait=2)

    def start(self):
        self.agent.start()
        return self

    def stop(self):
        self.client.close()
        self.agent.stop()

    def log_text(self):
        return "\n".join(f"{level}: {msg}" for level, msg in self.logs)

    def new_session(self, **values):
        session = Session(
            new_session_id(self.route),
            creation_time=time.time(),
            max_inactive=self.settings.max_inactive,
            is_new=True,
        )
        session.update(values)
        session.version = self.client.commit(session, session.delta(), sync=self.settings.sync)
        return session


@pytest.fixture
def cluster(tmp_path):
    """``cluster(n, **settings)`` starts n agents that list each other; all stop afterwards."""
    started: list[Node] = []

    def make(count, routes=None, ports=None, start=True, **overrides):
        ports = ports or [free_port() for _ in range(count)]
        routes = routes or [f"node{i + 1}" for i in range(count)]
        nodes = [Node(tmp_path, r, p, ports, **overrides) for r, p in zip(routes, ports, strict=True)]
        started.extend(nodes)
        if start:
            for node in nodes:
                node.start()
            wait_until(lambda: all(n.agent.ready.is_set() for n in nodes))
            wait_until(lambda: all(len(n.agent.membership.connected()) == count - 1 for n in nodes))
        return nodes

    make.started = started
    yield make
    for node in started:
        node.stop()


def solo_node(tmp_path):
    """A node alone, without replication, its agent socket at ``solo-0.sock``."""
    return Node(tmp_path, "solo", 0, [], listen=None, replication="off", members=())


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        gevent.sleep(0.01)


def test_a_sync_commit_is_applied_on_every_member_when_the_commit_returns(cluster):
    a, b, c = cluster(3)
    session = a.new_session(user="ann", cart=[1, 2])
    for node in (b, c):
        stored = node.agent.store.get(session.id)
        assert stored is not None and stored.attributes == {"user": "ann", "cart": [1, 2]}
    loaded = a.client.load(session.id)
    loaded["cart"] = [1, 2, 3]
    a.client.commit(loaded, loaded.delta(), sync=True)
    assert b.agent.store.get(session.id).attributes["cart"] == [1, 2, 3]
    assert c.agent.store.get(session.id).version == 2


def test_a_session_read_on_another_node_is_rebound_to_that_nodes_route(cluster):
    a, b, c = cluster(3)
    session = a.new_session(n=1)
    loaded = b.client.load(session.id)
    assert loaded.id == session.id.rsplit(".", 1)[0] + ".node2"
    assert loaded["n"] == 1
    assert b.agent.store.is_primary(loaded.id)
    # every member follows the new id, and the old one still finds the session for a while
    for node in (a, c):
        assert node.agent.store.get(loaded.id).id == loaded.id
        assert node.agent.store.get(session.id).id == loaded.id


def test_rebinding_can_be_turned_off(cluster):
    a, b = cluster(2, route_rebind=False)
    session = a.new_session(n=1)
    assert b.client.load(session.id).id == session.id


def test_an_invalidation_removes_the_session_from_every_member(cluster):
    a, b, c = cluster(3)
    session = a.new_session(n=1)
    loaded = b.client.load(session.id)
    loaded.invalidate()
    b.client.commit(loaded, loaded.delta(), sync=True)
    for node in (a, b, c):
        assert loaded.id not in node.agent.store
        assert node.client.load(session.id) is None


def test_a_session_expired_by_its_primary_is_removed_from_every_member(cluster):
    a, b, c = cluster(3, max_inactive=1)
    session = a.new_session(n=1)
    assert all(session.id in n.agent.store for n in (b, c))
    wait_until(lambda: all(session.id not in n.agent.store for n in (a, b, c)), timeout=5)
    assert a.agent.counters["expired"] == 1
    assert b.agent.counters["received_expire"] >= 1 or b.agent.counters["expired"] == 1


def test_reads_are_announced_so_replicas_do_not_expire_a_session_in_use(cluster):
    a, b = cluster(2, max_inactive=1)
    session = a.new_session(n=1)
    for _ in range(12):  # 3 s of reads on node1 only, more than twice the max inactive time
        assert a.client.load(session.id) is not None
        gevent.sleep(0.25)
    assert session.id in b.agent.store
    assert b.agent.counters["received_accessed"] >= 1


def test_a_starting_agent_receives_every_session_before_it_is_ready(cluster):
    ports = [free_port() for _ in range(3)]
    a, b, c = cluster(3, ports=ports, start=False)
    a.start()
    b.start()
    wait_until(lambda: a.agent.ready.is_set() and b.agent.ready.is_set())
    wait_until(lambda: a.agent.membership.connected() and b.agent.membership.connected())
    ids = [a.new_session(i=i, blob="x" * 2000).id for i in range(1500)]
    c.start()
    assert not c.agent.ready.is_set()
    wait_until(lambda: c.agent.ready.is_set())
    assert c.agent.transfer["state"] == "done"
    assert c.agent.transfer["sessions"] == 1500 and c.agent.transfer["chunks"] >= 2
    assert all(sid in c.agent.store for sid in ids)
    assert c.client.load(ids[7])["i"] == 7


def test_a_restarted_agent_refills_from_its_members(cluster, tmp_path):
    ports = [free_port() for _ in range(2)]
    a, b = cluster(2, ports=ports)
    ids = [a.new_session(i=i).id for i in range(50)]
    a.stop()
    replacement = Node(tmp_path, "node1", ports[0], ports)
    cluster.started.append(replacement)
    replacement.start()
    wait_until(lambda: replacement.agent.ready.is_set())
    assert replacement.agent.transfer["donor"] == "node2"
    assert all(sid in replacement.agent.store for sid in ids)
    wait_until(lambda: b.agent.membership.by_id("node1").restarts == 1)


def test_the_first_node_of_a_cluster_does_not_wait_for_absent_members(cluster):
    (a,) = cluster(1, ports=None, start=False, members=(("127.0.0.1", free_port()),))
    begun = time.monotonic()
    a.start()
    wait_until(lambda: a.agent.ready.is_set())
    assert time.monotonic() - begun < 2
    assert a.agent.transfer["state"] == "no member to ask"


def test_a_member_with_the_wrong_secret_gets_nothing_and_is_logged(cluster, tmp_path):
    ports = [free_port() for _ in range(3)]
    a, b = cluster(2, ports=ports[:2], members=tuple(("127.0.0.1", p) for p in ports))
    intruder = Node(tmp_path, "node3", ports[2], ports, secret=WRONG)
    cluster.started.append(intruder)
    intruder.start()
    wait_until(lambda: intruder.agent.ready.is_set())
    session = a.new_session(secret="yes")
    gevent.sleep(0.5)
    assert session.id in b.agent.store
    assert session.id not in intruder.agent.store
    assert len(intruder.agent.store) == 0
    assert a.agent.counters["auth_failures"] >= 1
    assert "bad HMAC tag" in a.log_text()
    member = a.agent.membership.get(("127.0.0.1", ports[2]))
    wait_until(lambda: member.auth_failures >= 1, timeout=5)
    assert member.state(time.monotonic()) == "gone" and member.id is None
    assert intruder.agent.counters["auth_failures"] >= 1


def test_a_node_that_is_not_a_configured_member_is_refused(cluster, tmp_path):
    ports = [free_port() for _ in range(3)]
    a, b = cluster(2, ports=ports[:2])
    stranger = Node(tmp_path, "node3", ports[2], ports)
    cluster.started.append(stranger)
    stranger.start()
    wait_until(lambda: "is not a ClusterMember" in a.log_text())
    session = a.new_session(n=1)
    gevent.sleep(0.2)
    assert session.id not in stranger.agent.store


def test_backup_replication_keeps_one_copy_and_other_nodes_pull_it(cluster):
    nodes = cluster(3, replication="backup")
    a = nodes[0]
    session = a.new_session(n=1)
    holders = [n for n in nodes[1:] if session.id in n.agent.store]
    assert len(holders) == 1
    other = next(n for n in nodes[1:] if n not in holders)
    loaded = other.client.load(session.id)
    assert loaded is not None and loaded["n"] == 1
    assert other.agent.counters["pulls"] == 1


def test_a_member_that_missed_the_creation_gets_the_whole_session(cluster):
    a, b = cluster(2)
    session = Session(new_session_id("node1"), creation_time=time.time())
    a.agent.store.create(session.id, time.time())  # known on node1 only
    session["late"] = True
    a.client.commit(session, session.delta(), sync=True)
    assert b.agent.store.get(session.id).attributes == {"late": True}
    assert a.agent.counters["repairs"] == 1


def test_async_commits_reach_the_members_soon_after(cluster):
    a, b = cluster(2, sync=False)
    ids = [a.new_session(i=i).id for i in range(100)]
    wait_until(lambda: all(sid in b.agent.store for sid in ids), timeout=5)
    status = a.client.status()
    assert status["mode"] == "async"
    assert status["lag_p99_ms"] is not None


def test_a_member_that_does_not_acknowledge_is_suspected_and_commits_go_on(cluster, monkeypatch):
    monkeypatch.setattr(agent_module, "ACK_TIMEOUT", 0.5)
    mute_port = free_port()
    listener = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", mute_port))
    listener.listen()
    accepted = []

    def mute_peer():
        # Completes the handshake, then reads everything and answers nothing.
        sock, _ = listener.accept()
        accepted.append(sock)
        reader = FrameReader(SECRET, nonce=b"n" * 16)
        hello = reader.feed(sock.recv(65536))[0]
        writer = FrameWriter("mute", SECRET)
        sock.sendall(
            writer.encode(
                MessageType.HELLO,
                {
                    "cluster": "pyhttpd",
                    "address": f"127.0.0.1:{mute_port}",
                    "incarnation": 1,
                    "started": 1,
                    "nonce": (b"n" * 16).hex(),
                    "ts": int(time.time() * 1000),
                },
            )
        )
        assert hello.type is MessageType.HELLO
        writer.peer_nonce = bytes.fromhex(hello.body["nonce"])
        while True:
            gevent.sleep(0.2)
            sock.sendall(writer.encode(MessageType.PING, {}))

    ports = [free_port(), mute_port]
    (a,) = cluster(
        1,
        ports=ports[:1],
        start=False,
        members=(("127.0.0.1", mute_port),),
        state_transfer_timeout=0.5,  # the mute peer never finishes one
    )
    helper = gevent.spawn(mute_peer)
    try:
        a.start()
        wait_until(lambda: a.agent.ready.is_set())
        # the mute member never finishes a state transfer: the agent serves after the timeout
        assert a.agent.transfer["state"] == "incomplete"
        assert "did not complete within" in a.log_text()
        begun = time.monotonic()
        a.new_session(n=1)
        first = time.monotonic() - begun
        assert 0.4 < first < 2
        assert a.agent.membership.by_id("mute").state(time.monotonic()) == "suspected"
        begun = time.monotonic()
        a.new_session(n=2)
        assert time.monotonic() - begun < 0.3  # no longer waited for
        assert a.agent.counters["ack_timeouts"] == 1
    finally:
        helper.kill()
        listener.close()


def test_the_status_lists_members_with_their_state_and_lag(cluster):
    a, b, c = cluster(3)
    for i in range(20):
        a.new_session(i=i)
    status = a.client.status()
    assert status["ready"] and status["member"] == "node1"
    assert status["sessions"]["sessions"] == 20 and status["sessions"]["primary"] == 20
    assert {m["id"] for m in status["members"]} == {"node2", "node3"}
    for member in status["members"]:
        assert member["state"] == "alive"
        assert member["lag_p50_ms"] is not None and member["queue"] == 0
    c.stop()
    wait_until(lambda: a.agent.membership.by_id("node3").state(time.monotonic()) != "alive")
    states = {m["id"]: m["state"] for m in a.client.status()["members"]}
    assert states["node3"] in ("suspected", "gone") and states["node2"] == "alive"


def test_the_agent_socket_is_private_to_the_server_user(cluster):
    (a,) = cluster(1, listen=None, replication="off", members=())
    import os
    import stat

    mode = stat.S_IMODE(os.stat(a.settings.agent_socket).st_mode)
    assert mode == 0o600


def test_a_client_waits_for_an_agent_that_is_restarting(tmp_path):
    node = solo_node(tmp_path)
    later = gevent.spawn_later(0.3, node.start)
    try:
        assert node.new_session(x=1).version == 1
    finally:
        later.join()
        node.stop()


def test_links_measure_the_round_trip_of_acknowledged_deltas(cluster):
    a, b = cluster(2)
    a.new_session(n=1)
    link: PeerLink = a.agent.membership.by_id("node2").outbound
    assert len(link.lag) == 1 and link.lag.percentile(50) < 1000


def test_a_member_cut_off_for_a_moment_catches_up_when_the_link_returns(cluster):
    a, b = cluster(2)
    session = a.new_session(n=1)
    a.agent.membership.by_id("node2").outbound.close("cut for the test")
    session["n"] = 2
    a.client.commit(session, session.delta(), sync=True)  # node2 is not connected: not sent
    wait_until(lambda: b.agent.store.get(session.id).attributes["n"] == 2, timeout=5)
    assert a.agent.counters["catch_up_pushes"] >= 1


def test_an_agent_that_does_not_answer_makes_requests_fail_not_hang(tmp_path):
    from modules.mod_session_repl.backend import SessionStoreUnavailable

    path = str(tmp_path / "silent.sock")
    listener = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    client = AgentClient(path, timeout=0.6, connect_wait=1)
    begun = time.monotonic()
    try:
        with pytest.raises(SessionStoreUnavailable, match="did not answer GET"):
            client.load(new_session_id("node1"))
        assert 0.5 < time.monotonic() - begun < 2
    finally:
        client.close()
        listener.close()


def test_a_commit_that_would_make_a_session_too_large_to_replicate_is_refused(cluster):
    a, b = cluster(2)
    session = a.new_session(part1="x" * 300_000)
    session["part2"] = "y" * 300_000
    with pytest.raises(SessionTooLarge, match="more than the limit"):
        a.client.commit(session, session.delta(), sync=True)
    assert "part2" not in b.agent.store.get(session.id).attributes
    loaded = a.client.load(session.id)
    loaded["part1"] = "z" * 300_000  # replacing keeps it under the limit
    a.client.commit(loaded, loaded.delta(), sync=True)
    assert b.agent.store.get(session.id).attributes["part1"][0] == "z"


def test_async_commits_wait_once_a_member_falls_too_far_behind(cluster, monkeypatch):
    monkeypatch.setattr(agent_module, "ASYNC_WINDOW", 3)
    a, b = cluster(2, sync=False)
    link = a.agent.membership.by_id("node2").outbound
    held = []
    answer = link._answer
    monkeypatch.setattr(link, "_answer", lambda seq, body: held.append((seq, body)))
    sessions = [a.new_session(i=i) for i in range(3)]  # three in flight, none acknowledged
    assert link.unanswered == 3
    waiter = gevent.spawn(a.new_session, i=3)
    gevent.sleep(0.3)
    assert not waiter.ready()  # the fourth waits for the member to catch up
    monkeypatch.setattr(link, "_answer", answer)
    for seq, body in held:
        answer(seq, body)
    waiter.join(5)
    assert waiter.successful() and len(sessions) == 3


def test_many_small_commits_still_stop_a_session_at_the_size_limit(cluster):
    (a,) = cluster(1)
    session = a.new_session(part0="x" * 200_000)
    loaded = a.client.load(session.id)
    loaded["part1"] = "x" * 200_000
    a.client.commit(loaded, loaded.delta(), sync=True)
    loaded = a.client.load(session.id)
    loaded["part2"] = "x" * 200_000  # 600 KB in all: over the limit of 512 KB
    with pytest.raises(SessionTooLarge, match="more than the limit"):
        a.client.commit(loaded, loaded.delta(), sync=True)
    for i in range(2000):  # small replacements, far more bytes in all than the limit
        loaded = a.client.load(session.id)
        loaded["part0"] = "y" * 200
        loaded["counter"] = i
        a.client.commit(loaded, loaded.delta(), sync=True)
    assert a.client.load(session.id)["counter"] == 1999


def test_changes_committed_together_reach_a_member_in_one_batch_and_in_order(cluster):
    a, b = cluster(2)
    sessions = [a.new_session(n=0) for _ in range(4)]
    batches_before = b.agent.counters["received_delta_batch"]
    first = Session(sessions[0].id, {"n": 0}, creation_time=time.time(), version=1)
    second = Session(sessions[0].id, {"n": 0}, creation_time=time.time(), version=1)
    first["n"], second["n"] = 1, 2
    changes = [first, second, *sessions[1:]]
    for session in sessions[1:]:
        session["n"] = 5
    commits = [gevent.spawn(a.client.commit, s, s.delta(), True) for s in changes]
    gevent.joinall(commits, raise_error=True)
    assert [c.value for c in commits] == [2, 3, 2, 2, 2]
    assert b.agent.counters["received_delta_batch"] == batches_before + 1
    assert b.agent.store.get(sessions[0].id).attributes["n"] == 2  # the later commit wins there too
    assert all(b.agent.store.get(s.id).attributes["n"] == 5 for s in sessions[1:])


def test_a_member_missing_one_session_of_a_batch_gets_it_whole_and_the_rest_applied(cluster):
    a, b = cluster(2)
    kept = a.new_session(n=0)
    lost = Session(new_session_id("node1"), creation_time=time.time())
    a.agent.store.create(lost.id, time.time())  # known on node1 only
    kept["n"], lost["n"] = 1, 1
    commits = [gevent.spawn(a.client.commit, s, s.delta(), True) for s in (kept, lost)]
    gevent.joinall(commits, raise_error=True)
    assert a.agent.counters["repairs"] == 1
    assert b.agent.store.get(kept.id).attributes["n"] == 1
    assert b.agent.store.get(lost.id).attributes["n"] == 1


def test_an_agent_refuses_the_socket_of_another_live_agent(tmp_path):
    first = solo_node(tmp_path).start()
    second = solo_node(tmp_path)
    try:
        with pytest.raises(OSError, match="another session agent listens on .*SessionAgentSocket"):
            second.agent.start()
        assert first.new_session(x=1).version == 1
    finally:
        first.stop()


def test_an_agent_takes_over_the_socket_a_dead_agent_left(tmp_path):
    path = tmp_path / "solo-0.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    node = solo_node(tmp_path).start()
    try:
        assert node.new_session(x=1).version == 1
    finally:
        node.stop()
