"""Replicated sessions on real pyhttpd nodes, with pyhttpd's own mod_jk (lb, sticky) in front."""

from __future__ import annotations

import psutil
import pytest

from tests.integration.session_nodes import (
    AJP_SECRET,
    Browser,
    Node,
    NodeSet,
    cluster_ready,
    request,
    start_all,
    wait_for,
)
from tests.peers.ports import free_port
from tests.server import PyHttpd

SESSIONS = 200
WRITES = 3


def front_conf(nodes: list[Node]) -> dict:
    """A pyhttpd front whose lb worker balances the nodes by route, sticky."""
    names = ",".join(n.route for n in nodes)
    workers = f"worker.list=lb\nworker.lb.type=lb\nworker.lb.balance_workers={names}\n"
    for node in nodes:
        workers += (
            f"worker.{node.route}.type=ajp13\nworker.{node.route}.host=127.0.0.1\n"
            f"worker.{node.route}.port={node.ajp_port}\nworker.{node.route}.secret={AJP_SECRET}\n"
        )
    return {
        "conf": "LoadModule jk_module modules/mod_jk\nJkWorkersFile conf/workers.properties\n"
        "JkLogFile logs/mod_jk.log\nJkMount /app/* lb\n",
        "files": {"conf/workers.properties": workers},
        "start_servers": 2,
        "threads_per_child": 16,
    }


@pytest.fixture
def node_set():
    """The session nodes of one test: ``node_set.start(count, **node_conf)``."""
    node_set = NodeSet()
    try:
        yield node_set
    finally:
        node_set.close()


def test_a_node_killed_with_sigkill_loses_no_session_and_gets_them_all_back(
    node_set, pyhttpd_factory
):
    nodes = node_set.start(3)
    node1 = nodes[0]
    assert wait_for(lambda: cluster_ready(nodes))
    front: PyHttpd = pyhttpd_factory(**front_conf(nodes))

    browsers = [Browser(front.port) for _ in range(SESSIONS)]
    for _ in range(WRITES):
        for i, browser in enumerate(browsers):
            page = browser.get(f"/app/count?b={i}")
            assert page["session"] == browser.session_id
            assert page["node"] == browser.session_id.rsplit(".", 1)[1]  # sticky
    on_node1 = [b for b in browsers if b.session_id.endswith(".node1")]
    assert 20 < len(on_node1) < 180
    assert all(int(b.get("/app/show")["count"]) == WRITES for b in browsers[:10])

    node1.kill()

    old_ids = {id(b): b.session_id for b in on_node1}
    for browser in on_node1:
        page = browser.get("/app/count")
        assert page["node"] in ("node2", "node3")
        assert int(page["count"]) == WRITES + 1, page  # every write made before the crash is there
        # the route followed the session to its new node, and stickiness with it
        assert browser.session_id != old_ids[id(browser)]
        assert browser.session_id.endswith("." + page["node"])
        assert browser.session_id.split(".")[0] == old_ids[id(browser)].split(".")[0]
        assert browser.get("/app/show")["node"] == page["node"]

    node1.start()
    status = wait_for(lambda: (s := node1.status())["ready"] and s, timeout=30)
    assert status["transfer"]["state"] == "done"
    assert status["sessions"]["sessions"] == SESSIONS
    for browser in browsers:  # served directly by node1 now, with every write
        page = browser.get("/app/show", port=node1.port)
        assert int(page["count"]) == WRITES + (1 if browser in on_node1 else 0)
    assert "state transfer from node" in node1.server.log_text()


def test_invalidation_and_expiry_are_seen_on_every_node(node_set):
    nodes = node_set.start(3, extra="SessionMaxInactive 3\nSessionRouteRebind Off\n")
    assert wait_for(lambda: cluster_ready(nodes))
    node1, node2, node3 = nodes

    ending = Browser(node1.port)
    ending.get("/app/set?user=ann")
    assert ending.get("/app/show", port=node2.port)["attributes"] == '{"user":"ann"}'
    ending.get("/app/invalidate", port=node3.port)
    for node in nodes:
        assert ending.get("/app/peek", port=node.port)["exists"] == "False"

    idle = Browser(node1.port)
    idle.get("/app/set?user=bob")
    assert all(node.status()["sessions"]["sessions"] == 1 for node in nodes)
    assert wait_for(lambda: all(n.status()["sessions"]["sessions"] == 0 for n in nodes), timeout=10)
    for node in nodes:
        assert idle.get("/app/peek", port=node.port)["exists"] == "False"
    assert node1.status()["counters"]["expired"] == 1


def test_a_member_with_the_wrong_secret_is_ignored_and_logged(node_set):
    ports = [free_port() for _ in range(3)]
    good = [Node(f"node{i + 1}", ports[i], ports) for i in range(2)]
    bad = Node("node3", ports[2], ports, secret="an-entirely-different-secret-0123456789")
    node_set.add(*good, bad)
    start_all([*good, bad])
    assert wait_for(
        lambda: all(
            any(m["id"] == other.route and m["state"] == "alive" for m in node.status()["members"])
            for node, other in (good, good[::-1])
        )
    )
    browser = Browser(good[0].port)
    browser.get("/app/set?secret=kept")
    assert good[1].status()["sessions"]["sessions"] == 1
    assert bad.status()["sessions"]["sessions"] == 0
    assert browser.get("/app/peek", port=bad.port)["exists"] == "False"
    members = {m["address"]: m for m in good[0].status()["members"]}
    intruder = members[f"127.0.0.1:{ports[2]}"]
    assert intruder["state"] == "gone" and intruder["id"] is None
    assert wait_for(lambda: "bad HMAC tag" in good[0].server.log_text())
    assert "wrong cluster secret" in good[0].server.log_text()


def test_a_killed_session_agent_is_restarted_and_nothing_is_lost(node_set):
    node1, node2 = node_set.start(2)
    assert wait_for(lambda: cluster_ready([node1, node2]))
    browsers = [Browser(node1.port) for _ in range(50)]
    for browser in browsers:
        browser.get("/app/count")
        browser.get("/app/count")
    agent = node1.status()["pid"]
    psutil.Process(agent).kill()

    def restarted() -> dict | None:
        try:
            s = node1.status()
        except AssertionError:  # 503 while the agent restarts: ask again
            return None
        return s if s["pid"] != agent and s["ready"] else None

    status = wait_for(restarted)
    assert status["sessions"]["sessions"] == 50
    assert (status["transfer"]["state"], status["transfer"]["donor"]) == ("done", "node2")
    for browser in browsers:
        assert browser.get("/app/count")["count"] == "3"
    assert "helper session-agent" in node1.server.log_text()


def test_requests_wait_for_the_state_transfer_of_a_starting_node(node_set):
    node1, node2 = node_set.start(2)
    assert wait_for(lambda: cluster_ready([node1, node2]))
    browser = Browser(node1.port)
    browser.get("/app/set?n=1")
    node2.server.stop()
    node2.start()
    # the first request on the restarted node already sees the session
    assert browser.get("/app/show", port=node2.port)["attributes"] == '{"n":"1"}'


def test_a_jsessionid_path_parameter_finds_the_session(node_set):
    (node,) = node_set.start(1)
    browser = Browser(node.port)
    browser.get("/app/count")
    status, headers, body = request(node.port, f"/app/count;jsessionid={browser.session_id}")
    assert status == 200 and "count=2" in body and "set-cookie" not in headers


def test_server_status_has_a_session_cluster_section(node_set):
    status_conf = (
        "LoadModule status_module modules/mod_status\n"
        "<Location /server-status>\nSetHandler server-status\n</Location>\n"
    )
    node1, node2 = node_set.start(2, extra=status_conf)
    assert wait_for(lambda: cluster_ready([node1, node2]))
    Browser(node1.port).get("/app/count")
    _, _, page = request(node1.port, "/server-status")
    assert "<h2>Session cluster</h2>" in page and "<td>node2</td>" in page and "<td>alive</td>" in page
    _, _, auto = request(node1.port, "/server-status?auto")
    assert "SessionNode: node1" in auto and "Sessions: 1" in auto
    assert "ClusterMember node2: state=alive" in auto


def test_sessions_survive_a_graceful_restart(node_set):
    import signal

    (node,) = node_set.start(1)
    browser = Browser(node.port)
    browser.get("/app/count")
    agent = node.status()["pid"]
    generation_log = node.server.log_text().count("resuming normal operations")
    node.server.signal(signal.SIGUSR1)
    assert wait_for(lambda: node.server.log_text().count("resuming normal operations") > generation_log)
    assert browser.get("/app/count")["count"] == "2"
    assert node.status()["pid"] == agent  # the agent is not a worker: it keeps running


def test_backup_replication_keeps_one_copy_and_survives_a_crash(node_set):
    nodes = node_set.start(3, extra="SessionReplication backup\n")
    node1, node2, node3 = nodes
    assert wait_for(lambda: cluster_ready(nodes))
    browsers = [Browser(node1.port) for _ in range(30)]
    for browser in browsers:
        browser.get("/app/count")
        browser.get("/app/count")
    held = [node.status()["sessions"]["sessions"] for node in (node2, node3)]
    assert sum(held) == 30 and all(held)  # one backup each, spread over both members
    node1.kill()
    for browser in browsers:  # node2 pulls what node3 holds
        assert browser.get("/app/count", port=node2.port)["count"] == "3"
    assert node2.status()["counters"]["pulls"] >= held[1]


def test_the_session_agent_runs_at_the_session_agent_nice_value(node_set):
    (node,) = node_set.start(1, extra="SessionAgentNice 7\n")
    agent = psutil.Process(node.status()["pid"])
    assert agent.nice() == 7
    assert psutil.Process(node.server.pid).nice() == 0  # the master and children keep theirs
    browser = Browser(node.port)
    browser.get("/app/count")
    assert browser.get("/app/count")["count"] == "2"
