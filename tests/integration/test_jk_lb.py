"""A real pyhttpd with several children balancing over fake AJP13 containers: the balancer
state is shared by every child through the scoreboard."""

from __future__ import annotations

import http.client
import signal
from collections import Counter

from tests.peers.ports import free_port
from tests.unit.jk_fake_container import Exchange, FakeContainer


def named(node: str):  # noqa: ANN201
    def answer(exchange: Exchange) -> None:
        exchange.respond(200, f"node={node}\n".encode())

    return answer


def jk_conf(port1: int, port2: int, extra: str = "") -> dict:
    workers = (
        "worker.list=bal,jkstatus\nworker.maintain=60\n"
        "worker.bal.type=lb\nworker.bal.balance_workers=node1,node2\n"
        f"worker.node1.host=127.0.0.1\nworker.node1.port={port1}\nworker.node1.lbfactor=3\n"
        f"worker.node2.host=127.0.0.1\nworker.node2.port={port2}\n"
        "worker.jkstatus.type=status\n" + extra
    )
    return {
        "conf": "LoadModule jk_module modules/mod_jk\nJkWorkersFile conf/workers.properties\n"
                "JkLogFile logs/mod_jk.log\nJkMount /app/* bal\nJkMount /jkstatus jkstatus\n",
        "files": {"conf/workers.properties": workers},
        "start_servers": 3,
        "threads_per_child": 4,
    }


def get(port: int, path: str) -> tuple[int, str]:
    """One request on its own connection, so the requests spread over the children."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def status(port: int, query: str) -> dict[str, str]:
    _, text = get(port, f"/jkstatus?{query}&mime=prop")
    return dict(line.split("=", 1) for line in text.splitlines())


def test_new_sessions_follow_lbfactor_over_all_children(pyhttpd_factory):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        server = pyhttpd_factory(**jk_conf(one.port, two.port))
        counts = Counter(get(server.port, "/app/x")[1] for _ in range(200))
        assert one.connections >= 2  # more than one child took part
    assert counts == {"node=node1\n": 150, "node=node2\n": 50}


def test_activation_changed_through_jkstatus_is_seen_by_every_child(pyhttpd_factory):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        server = pyhttpd_factory(**jk_conf(one.port, two.port))
        assert status(server.port, "cmd=update&w=bal&sw=node1&vwa=S")["worker.result.type"] == "OK"
        nodes = {get(server.port, "/app/x")[1] for _ in range(30)}
        assert two.connections >= 2
        assert one.requests == []
    assert nodes == {"node=node2\n"}


def test_member_in_error_is_skipped_by_every_child(pyhttpd_factory):
    with FakeContainer(named("node2")) as two:
        server = pyhttpd_factory(**jk_conf(free_port(), two.port))
        results = [get(server.port, "/app/x") for _ in range(30)]
        shown = status(server.port, "cmd=show&w=bal")
        assert two.connections >= 2
    assert all(result == (200, "node=node2\n") for result in results)
    assert shown["worker.node1.state"] == "ERR"
    assert shown["worker.node1.errors"] == "1"  # noticed once, by one child, for all of them


def test_sticky_requests_stay_on_their_node_in_every_child(pyhttpd_factory):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        server = pyhttpd_factory(**jk_conf(one.port, two.port))
        nodes = set()
        for _ in range(20):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.request("GET", "/app/x", headers={"Cookie": "JSESSIONID=abc.node2", "Connection": "close"})
            nodes.add(connection.getresponse().read().decode())
            connection.close()
    assert nodes == {"node=node2\n"}


def test_graceful_restart_keeps_serving_and_keeps_the_balancer_state(pyhttpd_factory):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        server = pyhttpd_factory(**jk_conf(one.port, two.port))
        for _ in range(8):
            assert get(server.port, "/app/x")[0] == 200
        before = status(server.port, "cmd=show&w=bal")
        server.signal(signal.SIGUSR1)
        assert server.wait_for(lambda: "resuming normal operations" in server.log_text().split("SIGUSR1", 1)[-1])
        results = [get(server.port, "/app/x")[0] for _ in range(8)]
        after = status(server.port, "cmd=show&w=bal")
    assert results == [200] * 8
    elected = [int(before[f"worker.{n}.elected"]) for n in ("node1", "node2")]
    assert [int(after[f"worker.{n}.elected"]) for n in ("node1", "node2")] != elected
    assert sum(int(after[f"worker.{n}.elected"]) for n in ("node1", "node2")) == sum(elected) + 8
