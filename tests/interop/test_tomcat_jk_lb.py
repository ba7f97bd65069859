"""pyhttpd's lb worker in front of two real Tomcat 10 nodes (jvmRoute node1 / node2)."""

from __future__ import annotations

import http.client
import re
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.peers.binaries import require_binary
from tests.peers.page_text import parse_page
from tests.peers.ports import free_port
from tests.peers.tomcat import CATALINA_SH, Tomcat
from tests.server import PyHttpd

pytestmark = pytest.mark.interop

SECRET = "lb-secret"


def front_for(node1: Tomcat, node2: Tomcat, maintain: int = 60, **lb: str) -> PyHttpd:
    """pyhttpd with an lb over both nodes (node1 weighs 3 and fails over to node2).

    Each maintenance halves the load values: a short worker.maintain makes recovery quick
    but, with few requests per interval, turns the lbfactor weighting into round robin.
    """
    workers = (
        f"worker.list=bal,jkstatus\nworker.maintain={maintain}\n"
        "worker.bal.type=lb\nworker.bal.balance_workers=node1,node2\n"
        f"worker.bal.secret={SECRET}\nworker.bal.recover_time=2\n"
        + "".join(f"worker.bal.{key}={value}\n" for key, value in lb.items())
        + f"worker.node1.host=127.0.0.1\nworker.node1.port={node1.ajp_port}\nworker.node1.lbfactor=3\n"
        "worker.node1.redirect=node2\nworker.node1.socket_connect_timeout=1000\n"
        f"worker.node2.host=127.0.0.1\nworker.node2.port={node2.ajp_port}\n"
        "worker.jkstatus.type=status\n"
    )
    return PyHttpd(
        "LoadModule jk_module modules/mod_jk\nJkWorkersFile conf/workers.properties\n"
        "JkLogFile logs/mod_jk.log\nJkMount /* bal\nJkMount /jkstatus jkstatus\n",
        files={"conf/workers.properties": workers},
        start_servers=2,
        threads_per_child=8,
    )


def get(server: PyHttpd, path: str, cookie: str | None = None) -> tuple[int, dict[str, str], str | None]:
    """One request on a new connection (so they spread over the children): status, the
    page's fields and the session cookie it set."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    headers = {"Connection": "close", **({"Cookie": cookie} if cookie else {})}
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read().decode()
        set_cookie = response.getheader("Set-Cookie")
        fields = parse_page(body) if response.status == 200 and "=" in body else {}
        return response.status, fields, set_cookie.split(";", 1)[0] if set_cookie else None
    finally:
        connection.close()


def status(server: PyHttpd, query: str) -> dict[str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", f"/jkstatus?{query}&mime=prop")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return dict(line.split("=", 1) for line in text.splitlines())


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Tomcat, Tomcat]]:
    require_binary(str(CATALINA_SH))
    require_binary("java")
    with Tomcat(route="node1", ajp_secret=SECRET) as node1, Tomcat(route="node2", ajp_secret=SECRET) as node2:
        yield node1, node2


@pytest.fixture
def front(nodes: tuple[Tomcat, Tomcat]) -> Iterator[PyHttpd]:
    with front_for(*nodes) as server:
        yield server


def test_lbfactor_3_to_1_spreads_400_new_sessions_3_to_1(front):
    counts = Counter(get(front, "/session.jsp")[1]["node"] for _ in range(400))
    assert abs(counts["node1"] - 300) <= 20
    assert counts["node1"] + counts["node2"] == 400


def test_requests_with_a_session_always_go_to_its_node(front):
    for _ in range(4):
        _, first, cookie = get(front, "/session.jsp")
        node = first["node"]
        assert cookie.endswith(f".{node}")
        for counter in range(2, 12):
            status_code, page, _ = get(front, "/session.jsp", cookie)
            assert (status_code, page["node"], page["counter"]) == (200, node, str(counter))


def test_disabled_node_keeps_its_sessions_and_stopped_node_gets_nothing(front):
    sessions = {}
    while len(sessions) < 2:
        _, page, cookie = get(front, "/session.jsp")
        sessions[page["node"]] = cookie
    assert status(front, "cmd=update&w=bal&sw=node1&vwa=D")["worker.result.type"] == "OK"
    fresh = {get(front, "/info.jsp")[1]["node"] for _ in range(20)}
    own = {get(front, "/session.jsp", sessions["node1"])[1]["node"] for _ in range(10)}
    assert (fresh, own) == ({"node2"}, {"node1"})
    assert status(front, "cmd=update&w=bal&sw=node1&vwa=S")["worker.result.type"] == "OK"
    moved = {get(front, "/session.jsp", sessions["node1"])[1]["node"] for _ in range(10)}
    assert moved == {"node2"}
    assert status(front, "cmd=show&w=bal")["worker.node1.activation"] == "STP"


def test_sticky_session_force_answers_503_instead_of_failing_over(nodes):
    node1, node2 = nodes
    with front_for(node1, node2, sticky_session_force="true") as server:
        _, page, cookie = get(server, "/session.jsp", None)
        while page["node"] != "node1":
            _, page, cookie = get(server, "/session.jsp", None)
        assert status(server, "cmd=update&w=bal&sw=node1&vwa=S")["worker.result.type"] == "OK"
        assert get(server, "/session.jsp", cookie)[0] == 503


def test_node_stopped_sends_its_sessions_to_the_redirect_and_gets_new_ones_after_recovery(nodes):
    node1, node2 = nodes
    with front_for(node1, node2, maintain=1) as front:
        _stop_and_recover(node1, front)


def _stop_and_recover(node1: Tomcat, front: PyHttpd) -> None:
    _, page, cookie = get(front, "/session.jsp")
    while page["node"] != "node1":
        _, page, cookie = get(front, "/session.jsp")
    node1.stop()
    try:
        results = [get(front, "/session.jsp", cookie) for _ in range(10)]
        assert [(code, fields.get("node")) for code, fields, _ in results] == [(200, "node2")] * 10
        shown = status(front, "cmd=show&w=bal")
        assert shown["worker.node1.state"] == "ERR"
        fresh = {get(front, "/info.jsp")[1]["node"] for _ in range(10)}
        assert fresh == {"node2"}
    finally:
        node1.start()
    deadline = time.monotonic() + 30
    seen: set[str] = set()
    while "node1" not in seen and time.monotonic() < deadline:
        code, fields, _ = get(front, "/info.jsp")
        assert code == 200  # the recovery probe never costs a client its request
        seen.add(fields["node"])
        time.sleep(0.2)
    assert "node1" in seen
    assert re.fullmatch(r"OK(/IDLE)?", status(front, "cmd=show&w=bal")["worker.node1.state"])


def test_jkstatus_properties_have_the_same_lines_as_apache_mod_jk(apache_factory):
    workers = (
        "worker.list=bal,jkstatus,solo\n"
        "worker.bal.type=lb\nworker.bal.balance_workers=node1,node2\n"
        f"worker.node1.host=127.0.0.1\nworker.node1.port={free_port()}\nworker.node1.lbfactor=3\n"
        "worker.node1.redirect=node2\n"
        f"worker.node2.host=127.0.0.1\nworker.node2.port={free_port()}\nworker.node2.activation=D\n"
        f"worker.solo.host=127.0.0.1\nworker.solo.port={free_port()}\n"
        "worker.jkstatus.type=status\n"
    )
    mounts = "JkMount /jkstatus jkstatus\nJkMount /app/* bal\nJkMount /solo/* solo"
    apache = apache_factory(workers_properties=workers, jk_conf=mounts)
    ours = PyHttpd(
        f"LoadModule jk_module modules/mod_jk\nJkWorkersFile conf/workers.properties\n{mounts}\n",
        files={"conf/workers.properties": workers},
    )
    query = "/jkstatus?cmd=list&mime=prop"
    with ours:
        mine = status(ours, "cmd=list")
        connection = http.client.HTTPConnection("127.0.0.1", apache.port, timeout=30)
        connection.request("GET", query)
        theirs = dict(line.split("=", 1) for line in connection.getresponse().read().decode().splitlines())
        connection.close()
    assert set(mine) == set(theirs)
    varying = ("server_", "time_", "web_server", "jk_version", "last_reset", ".address", "map.1.server")
    differ = {k for k in theirs if mine[k] != theirs[k] and not any(v in k for v in varying)}
    assert differ == set()
