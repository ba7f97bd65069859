"""Members found by multicast heartbeats (ClusterMulticast), inside network namespaces.

Multicast never touches the host's network: the test creates one namespace per node
plus a "switch" namespace holding a bridge, joins them with veth pairs on a private
10.x subnet, and runs each pyhttpd node inside its namespace with ``ip netns exec``.
Requests to a node are made from inside its namespace too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration.session_nodes import CLUSTER_SECRET, SESSION_APP
from tests.peers.page_text import parse_page
from tests.server import PYHTTPD, REPO, PyHttpd

GROUP = "228.0.0.4:45564"
CLUSTER_PORT = 4000

# Run inside a namespace: one GET, printed as JSON (status, headers, body).
CLIENT = """
import http.client, json, sys
port, path, cookie = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
c.request("GET", path, headers={"Cookie": cookie} if cookie else {})
r = c.getresponse()
print(json.dumps([r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read().decode()]))
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Network:
    """Namespaces ``<prefix>n1..nN`` on one bridge in ``<prefix>sw``, 10.<x>.<y>.N/24."""

    def __init__(self, count: int) -> None:
        self.prefix = f"pyhs{os.getpid() % 100000}"
        self.switch = f"{self.prefix}sw"
        self.subnet = f"10.{77 + os.getpid() % 100}.{os.getpid() % 250}"
        self.names = [f"{self.prefix}n{i + 1}" for i in range(count)]
        self.created: list[str] = []

    def address(self, index: int) -> str:
        return f"{self.subnet}.{index + 1}"

    def create(self) -> None:
        ip("netns", "add", self.switch)
        self.created.append(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for i, name in enumerate(self.names):
            ip("netns", "add", name)
            self.created.append(name)
            port = f"p{i + 1}"
            ip("link", "add", "eth0", "netns", name, "type", "veth", "peer", "name", port, "netns", self.switch)
            ip("-n", self.switch, "link", "set", port, "master", "br0")
            ip("-n", self.switch, "link", "set", port, "up")
            ip("-n", name, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")
            ip("-n", name, "link", "set", "lo", "up")
            ip("-n", name, "route", "add", "224.0.0.0/4", "dev", "eth0")

    def delete(self) -> None:
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


class NamespacedNode:
    """A pyhttpd node run inside a namespace; its ServerRoot is an ordinary temp dir."""

    def __init__(self, netns: str, route: str, address: str, extra: str = "") -> None:
        self.netns = netns
        self.route = route
        self.server = PyHttpd(
            "LoadModule wsgi_module modules/mod_wsgi\n"
            f"WSGIScriptAlias /app {SESSION_APP}\n"
            "LoadModule session_repl_module modules/mod_session_repl\n"
            f"SessionRoute {route}\nSessionRouteRebind Off\n"
            f"ClusterListen {address}:{CLUSTER_PORT}\nClusterMulticast {GROUP}\n"
            f"ClusterSecret {CLUSTER_SECRET}\nClusterStateTransferTimeout 10\n"
            "<Location /cluster-status>\nSetHandler session-cluster-status\n</Location>\n"
            "LogLevel info\n" + extra,
            start_servers=1,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.server.root / "logs" / "stdout", "ab")  # noqa: SIM115 - closed by the process end
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, str(PYHTTPD),
             "-f", str(self.server.conf_path), "-D", "FOREGROUND"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.server.root,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 20
        while "session agent" not in self.server.log_text() or "resuming normal" not in self.server.log_text():
            assert self.proc.poll() is None, self.server.log_text()
            assert time.monotonic() < deadline, self.server.log_text()
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # `ip netns exec` became the master
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def get(self, path: str, cookie: str = "") -> tuple[int, dict[str, str], str]:
        out = subprocess.run(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", CLIENT,
             str(self.server.port), path, cookie],
            capture_output=True, check=True, timeout=30, cwd=REPO,
        )  # fmt: skip
        status, headers, body = json.loads(out.stdout)
        return status, headers, body

    def status(self) -> dict:
        status, _, body = self.get("/cluster-status?json")
        assert status == 200, body
        return json.loads(body)


@pytest.fixture
def network() -> Iterator[Network]:
    net = Network(3)
    try:
        net.create()
        yield net
    finally:
        net.delete()


@pytest.fixture
def namespaced_nodes(network: Network) -> Iterator[list[NamespacedNode]]:
    nodes = [
        NamespacedNode(name, f"node{i + 1}", network.address(i)) for i, name in enumerate(network.names)
    ]
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()
        for node in nodes:
            print(f"===== {node.route} =====\n{node.server.log_text()[-4000:]}")
            node.server.close()  # its process is stopped: this removes its ServerRoot


def alive_members(node: NamespacedNode) -> set[str]:
    return {m["id"] for m in node.status()["members"] if m["state"] == "alive"}


def wait_for(predicate, timeout: float = 15.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            return value
        time.sleep(0.2)
    return value


def test_nodes_find_each_other_by_multicast_and_replicate(namespaced_nodes):
    for node in namespaced_nodes:
        node.start()
    node1, node2, node3 = namespaced_nodes
    assert wait_for(lambda: alive_members(node1) == {"node2", "node3"})
    assert wait_for(lambda: alive_members(node2) == {"node1", "node3"})
    status = node3.status()
    assert status["multicast"] == GROUP
    assert {m["static"] for m in status["members"]} == {False}

    code, headers, body = node1.get("/app/set?user=ann")
    assert code == 200
    cookie = headers["set-cookie"].split(";")[0]
    for node in (node2, node3):
        page = parse_page(node.get("/app/show", cookie)[2])
        assert (page["node"], page["attributes"]) == (node.route, '{"user":"ann"}')

    node3.stop()  # its heartbeats stop: the others drop it after the drop time
    assert wait_for(lambda: alive_members(node1) == {"node2"})
    assert wait_for(lambda: "node3" not in {m["id"] for m in node1.status()["members"]}, timeout=10)
    assert "dropped: no heartbeat" in node1.server.log_text()


def test_a_node_with_another_secret_is_not_admitted(network, namespaced_nodes):
    node1, node2, _ = namespaced_nodes
    stranger = NamespacedNode(
        network.names[2], "node3", network.address(2)
    )
    stranger.server.write_conf(
        stranger.server.conf_path.read_text().replace(CLUSTER_SECRET, "x" * 40)
    )
    namespaced_nodes[2].server.close()  # the node3 it replaces never starts
    namespaced_nodes[2] = stranger
    for node in (node1, node2, stranger):
        node.start()
    assert wait_for(lambda: alive_members(node1) == {"node2"})
    assert wait_for(lambda: "multicast heartbeat from" in node1.server.log_text())
    time.sleep(1.0)  # several heartbeats of the stranger have arrived by now
    assert alive_members(node1) == {"node2"}
    assert {m["id"] for m in node1.status()["members"]} == {"node2"}
    assert stranger.status()["members"] == []
