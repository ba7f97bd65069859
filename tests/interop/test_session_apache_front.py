"""Real Apache httpd + mod_jk in front of three pyhttpd nodes with replicated sessions.

The seed's last step with pyhttpd where Tomcat stood: mod_jk's lb worker keeps each
session on the node named by the route after the last '.' of JSESSIONID; when that node
is killed, mod_jk fails over to another, which has every session (sync replication) and
rebinds the route so the session sticks to it from then on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.session_nodes import (
    AJP_SECRET,
    Browser,
    Node,
    NodeSet,
    cluster_ready,
    wait_for,
)

SESSIONS = 60
WRITES = 3


@pytest.fixture
def node_set() -> Iterator[NodeSet]:
    """The session nodes of one test: ``node_set.start(count, **node_conf)``."""
    nodes = NodeSet()
    try:
        yield nodes
    finally:
        nodes.close()


def workers_properties(nodes: list[Node]) -> str:
    text = (
        "worker.list=lb\nworker.lb.type=lb\nworker.lb.sticky_session=true\n"
        f"worker.lb.balance_workers={','.join(n.route for n in nodes)}\n"
    )
    for node in nodes:
        name = node.route
        text += (
            f"worker.{name}.type=ajp13\nworker.{name}.host=127.0.0.1\n"
            f"worker.{name}.port={node.ajp_port}\nworker.{name}.secret={AJP_SECRET}\n"
        )
    return text


def test_apache_fails_sessions_over_to_the_surviving_nodes_with_all_their_data(
    node_set, apache_factory
):
    nodes = node_set.start(3)
    node1 = nodes[0]
    assert wait_for(lambda: cluster_ready(nodes))
    apache = apache_factory(workers_properties=workers_properties(nodes), jk_conf="JkMount /app/* lb")

    browsers = [Browser(apache.port) for _ in range(SESSIONS)]
    for _ in range(WRITES):
        for browser in browsers:
            page = browser.get("/app/count")
            assert page["node"] == browser.session_id.rsplit(".", 1)[1]  # mod_jk kept it sticky
    on_node1 = [b for b in browsers if b.session_id.endswith(".node1")]
    assert on_node1

    node1.kill()

    for browser in browsers:
        page = browser.get("/app/count")
        assert int(page["count"]) == WRITES + 1, page
        assert page["node"] != "node1"
        assert browser.session_id.endswith("." + page["node"])  # rebound: sticky on the new node
    for browser in on_node1:
        assert browser.get("/app/show")["count"] == str(WRITES + 1)

    node1.start()
    status = wait_for(lambda: (s := node1.status())["ready"] and s, timeout=30)
    assert status["sessions"]["sessions"] == SESSIONS
    for browser in on_node1:
        assert browser.get("/app/show", port=node1.port)["count"] == str(WRITES + 1)
