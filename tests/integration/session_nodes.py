"""Pyhttpd nodes hosting tests/apps/session_app.py with mod_session_repl, and a client for them.

Used by the session cluster tests (pyhttpd's own mod_jk in front) and the interop
test (Apache httpd + mod_jk in front).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil

from tests.peers.page_text import parse_page
from tests.peers.ports import free_port
from tests.server import PyHttpd

SESSION_APP = Path(__file__).resolve().parents[1] / "apps" / "session_app.py"
AJP_SECRET = "ajp-secret-for-session-tests"
CLUSTER_SECRET = "cluster-secret-0123456789-abcdefghijklmnop"


def node_conf(
    route: str,
    cluster_port: int | None,
    member_ports: list[int],
    *,
    secret: str = CLUSTER_SECRET,
    extra: str = "",
) -> str:
    """httpd.conf lines for one node: mod_wsgi, the session app, AJP, the session cluster."""
    cluster = ""
    if cluster_port is not None:
        members = " ".join(f"127.0.0.1:{p}" for p in member_ports)
        cluster = (
            f"ClusterListen 127.0.0.1:{cluster_port}\nClusterMember {members}\n"
            f"ClusterSecret {secret}\nClusterStateTransferTimeout 15\n"
        )
    return (
        "LoadModule wsgi_module modules/mod_wsgi\n"
        f"WSGIScriptAlias /app {SESSION_APP}\n"
        "LoadModule session_repl_module modules/mod_session_repl\n"
        f"AjpSecret {AJP_SECRET}\n"
        f"SessionRoute {route}\n{cluster}"
        "<Location /cluster-status>\nSetHandler session-cluster-status\n</Location>\n"
        "LogLevel info\n" + extra
    )


class Node:
    """One pyhttpd node: an HTTP port for direct requests and an ajp13 port for a balancer."""

    def __init__(
        self,
        route: str,
        cluster_port: int | None,
        member_ports: list[int],
        threads_per_child: int = 16,
        **conf,
    ) -> None:
        self.route = route
        self.cluster_port = cluster_port
        self.server = PyHttpd(
            node_conf(route, cluster_port, member_ports, **conf),
            extra_listens=("ajp13",),
            start_servers=2,
            threads_per_child=threads_per_child,
        )

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ajp_port(self) -> int:
        return self.server.ports[1]

    def start(self) -> Node:
        self.server.start()
        return self

    def status(self) -> dict:
        """The session cluster status of this node (waits for a restarting agent)."""
        status, _, body = request(self.port, "/cluster-status?json")
        assert status == 200, body
        return json.loads(body)

    def kill(self) -> None:
        """SIGKILL the master, its children and the session agent, as a crashing machine would."""
        master = psutil.Process(self.server.pid)
        pids = [master.pid] + [p.pid for p in master.children(recursive=True)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.server.proc.wait(10)
        for pid in pids[1:]:
            try:
                psutil.Process(pid).wait(10)
            except psutil.NoSuchProcess:
                pass

    def close(self) -> None:
        self.server.close()


def start_nodes(count: int, routes: list[str] | None = None, **conf) -> list[Node]:
    """*count* nodes that list each other as members, started together."""
    routes = routes or [f"node{i + 1}" for i in range(count)]
    ports = [free_port() for _ in range(count)]
    nodes = [Node(route, port, ports, **conf) for route, port in zip(routes, ports, strict=True)]
    start_all(nodes)
    return nodes


def start_all(nodes: list[Node]) -> None:
    """Start nodes in parallel (each waits for its members only for a moment)."""
    errors: list[BaseException] = []

    def start(node: Node) -> None:
        try:
            node.start()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]


def request(port: int, path: str, cookie: str | None = None) -> tuple[int, dict[str, str], str]:
    """Status, response headers (lower-case names) and body of one GET on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Connection": "close"}
        if cookie:
            headers["Cookie"] = cookie
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read().decode()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


class Browser:
    """A client with a cookie jar holding one session cookie."""

    def __init__(self, port: int, cookie_name: str = "JSESSIONID") -> None:
        self.port = port
        self.cookie_name = cookie_name
        self.session_id: str | None = None

    def get(self, path: str, port: int | None = None) -> dict[str, str]:
        """The page at *path*, keeping any new session cookie; asserts a 200."""
        cookie = f"{self.cookie_name}={self.session_id}" if self.session_id else None
        status, headers, body = request(port or self.port, path, cookie)
        assert status == 200, f"{path}: {status} {body}"
        set_cookie = headers.get("set-cookie")
        if set_cookie and set_cookie.startswith(f"{self.cookie_name}="):
            self.session_id = set_cookie.split(";", 1)[0].split("=", 1)[1]
        return parse_page(body)


class NodeSet:
    """The nodes one test starts (``start(count, **node_conf)`` or ``add``); ``close()`` stops
    them all and prints their logs, which pytest shows when the test failed."""

    def __init__(self) -> None:
        self.started: list[Node] = []

    def start(self, count: int, **conf) -> list[Node]:
        nodes = start_nodes(count, **conf)
        self.started.extend(nodes)
        return nodes

    def add(self, *nodes: Node) -> None:
        self.started.extend(nodes)

    def close(self) -> None:
        for node in self.started:
            node.close()
        for node in self.started:
            print(f"===== {node.route} =====\n{node.server.log_text()[-6000:]}")


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):  # noqa: ANN001, ANN201
    """Poll *predicate* until it returns something true (returned) or *timeout* passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def cluster_ready(nodes: list[Node]) -> bool:
    """Whether every node is ready and sees every other one alive."""
    statuses = [node.status() for node in nodes]
    return all(
        s["ready"] and sum(m["state"] == "alive" for m in s["members"]) == len(nodes) - 1
        for s in statuses
    )
