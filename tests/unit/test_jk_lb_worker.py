"""The lb worker at run time over fake containers: balancing, stickiness, failover."""

from __future__ import annotations

import threading
from collections import Counter

from modules.mod_jk.lb_shm import BalancerState
from tests.peers.ports import free_port
from tests.unit.jk_fake_container import Exchange, FakeContainer
from tests.unit.jk_request import jk_config, serve


def named(node: str):  # noqa: ANN201
    def answer(exchange: Exchange) -> None:
        exchange.respond(200, f"node={node}\nroute={exchange.request.route}\n".encode())

    return answer


def balancer(port1: int, port2: int, **extra: str) -> str:
    lines = [
        "worker.list=bal",
        "worker.bal.type=lb",
        "worker.bal.balance_workers=node1,node2",
        f"worker.node1.host=127.0.0.1\nworker.node1.port={port1}",
        f"worker.node2.host=127.0.0.1\nworker.node2.port={port2}",
        *(f"worker.{key.replace('__', '.')}={value}" for key, value in extra.items()),
    ]
    return "\n".join(lines) + "\n"


def node_of(client) -> str:  # noqa: ANN001
    return client.out.decode().split("\n", 1)[0].removeprefix("node=")


def test_new_sessions_follow_the_lbfactor_ratio(tmp_path):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        config = jk_config(tmp_path, balancer(one.port, two.port, node1__lbfactor="3"), "JkMount /* bal")
        counts = Counter(node_of(serve(config, "GET /x")[1]) for _ in range(40))
    assert counts == {"node1": 30, "node2": 10}


def test_request_with_a_session_goes_to_its_node(tmp_path):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        config = jk_config(tmp_path, balancer(one.port, two.port), "JkMount /* bal")
        by_cookie = {node_of(serve(config, "GET /x", {"Cookie": "JSESSIONID=ABC.node2"})[1]) for _ in range(6)}
        by_path = {node_of(serve(config, "GET /x;jsessionid=DEF.node1")[1]) for _ in range(6)}
    assert by_cookie == {"node2"}
    assert by_path == {"node1"}


def test_route_is_sent_to_the_container(tmp_path):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        config = jk_config(tmp_path, balancer(one.port, two.port), "JkMount /* bal")
        _, client = serve(config, "GET /x", {"Cookie": "JSESSIONID=ABC.node2"})
    assert b"route=node2" in client.out


def test_sessions_of_a_dead_node_go_to_its_redirect(tmp_path):
    with FakeContainer(named("node2")) as two:
        config = jk_config(tmp_path, balancer(free_port(), two.port, node1__redirect="node2"),
                           "JkMount /* bal")
        r, client = serve(config, "GET /x", {"Cookie": "JSESSIONID=ABC.node1"})
        assert client.status == 200
        assert node_of(client) == "node2"
        assert (r.notes["JK_LB_FIRST_NAME"], r.notes["JK_LB_LAST_NAME"]) == ("node1", "node2")
        lb = config.main_server.module_config["jk_module"].state.registry.balancers["bal"].balancer
        assert lb.member("node1").state.text == "ERR"
        # Now that node1 is known to be in error, its sessions go to node2 at once.
        _, again = serve(config, "GET /x", {"Cookie": "JSESSIONID=ABC.node1"})
        assert node_of(again) == "node2"


def test_sticky_session_force_answers_503_instead_of_failing_over(tmp_path):
    with FakeContainer(named("node2")) as two:
        config = jk_config(tmp_path, balancer(free_port(), two.port, bal__sticky_session_force="true"),
                           "JkMount /* bal")
        _, client = serve(config, "GET /x", {"Cookie": "JSESSIONID=ABC.node1"})
    assert client.status == 503


def test_all_members_down_gives_503(tmp_path):
    config = jk_config(tmp_path, balancer(free_port(), free_port()), "JkMount /* bal")
    _, client = serve(config, "GET /x")
    assert client.status == 503


def test_disabled_member_gets_only_its_own_sessions(tmp_path):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        config = jk_config(tmp_path, balancer(one.port, two.port, node2__activation="D"), "JkMount /* bal")
        fresh = {node_of(serve(config, "GET /x")[1]) for _ in range(6)}
        sticky = node_of(serve(config, "GET /x", {"Cookie": "JSESSIONID=A.node2"})[1])
    assert fresh == {"node1"}
    assert sticky == "node2"


def test_stopped_member_gets_nothing(tmp_path):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        config = jk_config(tmp_path, balancer(one.port, two.port, node2__activation="S"), "JkMount /* bal")
        sticky = node_of(serve(config, "GET /x", {"Cookie": "JSESSIONID=A.node2"})[1])
    assert sticky == "node1"


def test_set_session_cookie_tells_the_client_its_route(tmp_path):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        config = jk_config(tmp_path, balancer(one.port, two.port, bal__set_session_cookie="true"),
                           "JkMount /* bal")
        _, client = serve(config, "GET /x")
    cookie = client.header("Set-Cookie")
    assert cookie.startswith(f"JSESSIONID=.{node_of(client)};PATH=/;HttpOnly")


def test_mapping_rule_can_override_a_members_activation(tmp_path):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        config = jk_config(tmp_path, balancer(one.port, two.port), "JkMount /* bal;stopped=node1")
        nodes = {node_of(serve(config, "GET /x")[1]) for _ in range(4)}
    assert nodes == {"node2"}


def test_jk_shm_file_holds_the_balancer_state_for_the_children(tmp_path):
    with FakeContainer(named("node1")) as one, FakeContainer(named("node2")) as two:
        config = jk_config(tmp_path, balancer(one.port, two.port), f"JkMount /* bal\nJkShmFile {tmp_path}/jk.shm")
        config.hooks.run_void("child_init", config)
        for _ in range(4):
            serve(config, "GET /x")
        registry = config.main_server.module_config["jk_module"].state.registry
        shared = BalancerState(bytearray((tmp_path / "jk.shm").read_bytes()), registry.config, threading.Lock())
    assert sum(member.elected for member in shared["bal"].members) == 4
