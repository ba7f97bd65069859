"""A real pyhttpd node with an ajp13 listener, driven by pyhttpd's own AJP13 codec, and two
nodes behind a pyhttpd front with mod_jk."""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import sys
import threading
import time

from tests.apps.echo_app import pattern
from tests.interop.test_apache_modjk_front import Client, balancer, member, node_conf
from tests.peers.page_text import parse_page
from tests.server import PYHTTPD, PyHttpd
from tests.unit.test_ajp_connection import ECHO_APP, SECRET, WebServer

NODE_CONF = f"""
LoadModule wsgi_module modules/mod_wsgi
WSGIScriptAlias /app {ECHO_APP}
AjpSecret {SECRET}
"""


def connect(server: PyHttpd) -> WebServer:
    """An AJP13 connection to the server's ajp13 listener (its second port)."""
    sock = socket.create_connection(("127.0.0.1", server.ports[1]), timeout=30)
    return WebServer(sock, threading.Thread())


def test_node_serves_a_wsgi_application_over_ajp(pyhttpd_factory):
    node = pyhttpd_factory(NODE_CONF, extra_listens=("ajp13",))
    web = connect(node)
    payload = pattern(1024 * 1024)
    response = web.request("/app/info", body=payload, remote_addr="203.0.113.5", query_string="via=ajp")
    page = response.page()
    assert (response.status, response.reuse) == (200, True)
    assert (page["remoteAddr"], page["queryString"]) == ("203.0.113.5", "via=ajp")
    assert page["body.sha256"] == hashlib.sha256(payload).hexdigest()
    response = web.request("/app/big", query_string=f"bytes={5 * 1024 * 1024}")
    assert bytes(response.body) == pattern(5 * 1024 * 1024)


def test_static_files_and_the_status_page_are_served_over_ajp_too(pyhttpd_factory):
    data = pattern(200_000)
    status_conf = "LoadModule status_module modules/mod_status\n<Location /server-status>\nSetHandler server-status\n</Location>\n"
    node = pyhttpd_factory(NODE_CONF + status_conf, extra_listens=("ajp13",), files={"htdocs/data.bin": data})
    web = connect(node)
    response = web.request("/data.bin")
    assert (response.status, bytes(response.body)) == (200, data)
    assert response.header("Content-Length") == [str(len(data))]
    response = web.request("/server-status", query_string="auto")
    assert response.status == 200
    assert "BusyWorkers:" in response.body.decode()


def test_many_connections_are_served_at_once(pyhttpd_factory):
    node = pyhttpd_factory(NODE_CONF, extra_listens=("ajp13",), start_servers=1)
    webs = [connect(node) for _ in range(8)]
    results: list[int] = []

    def one(web: WebServer) -> None:
        results.append(web.request("/app/sleep", query_string="seconds=1").status)

    threads = [threading.Thread(target=one, args=(w,)) for w in webs]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 8
    assert time.monotonic() - started < 5  # one after the other would take 8


def test_wrong_secret_is_refused_with_403_and_logged(pyhttpd_factory):
    node = pyhttpd_factory(NODE_CONF, extra_listens=("ajp13",))
    web = connect(node)
    response = web.request("/app/info", secret="guess")
    assert (response.status, response.reuse) == (403, False)
    assert web.sock.recv(1) == b""
    assert node.wait_for(lambda: "AJP request refused: wrong secret" in node.log_text())


def test_malformed_packet_closes_that_connection_and_the_child_serves_on(pyhttpd_factory):
    node = pyhttpd_factory(NODE_CONF, extra_listens=("ajp13",), start_servers=1)
    good = connect(node)
    pid = good.request().page()["pid"]
    bad = connect(node)
    bad.sock.sendall(b"\x12\x34\xff\xff")
    assert bad.sock.recv(1) == b""
    page = good.request().page()
    assert page["pid"] == pid
    assert "malformed AJP13 packet" in node.log_text()


def test_idle_ajp_connection_is_closed_when_the_child_stops_gracefully(pyhttpd_factory):
    node = pyhttpd_factory(NODE_CONF, extra_listens=("ajp13",), start_servers=1)
    web = connect(node)
    old_pid = web.request().page()["pid"]
    node.signal(signal.SIGUSR1)
    started = time.monotonic()
    web.sock.settimeout(10)
    assert web.sock.recv(1) == b""
    assert time.monotonic() - started < 5
    assert node.wait_for(lambda: connect(node).request().page()["pid"] != old_pid, timeout=15)


def test_ajp_listener_without_a_secret_is_a_config_error_naming_file_and_line(tmp_path):
    conf = tmp_path / "httpd.conf"
    conf.write_text(f"ServerRoot {tmp_path}\nListen 127.0.0.1:18080\nListen 127.0.0.1:18009 ajp13\n")
    for args in (["-t"], ["-D", "FOREGROUND"]):
        done = subprocess.run(
            [sys.executable, str(PYHTTPD), "-f", str(conf), *args], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 1
        assert f"{conf}:3: Listen: the ajp13 listener 127.0.0.1:18009 needs AjpSecret" in done.stderr
        assert "CVE-2020-1938" in done.stderr


def test_ajp_secret_required_off_allows_an_open_listener(tmp_path):
    conf = tmp_path / "httpd.conf"
    conf.write_text(f"ServerRoot {tmp_path}\nListen 127.0.0.1:18009 ajp13\nAjpSecretRequired Off\n")
    done = subprocess.run([sys.executable, str(PYHTTPD), "-f", str(conf), "-t"], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr.strip()) == (0, "Syntax OK")


# -- pyhttpd's own mod_jk in front of two pyhttpd nodes: the whole stack in Python ---------


def front_conf(workers: str) -> tuple[str, dict[str, str]]:
    conf = (
        "LoadModule jk_module modules/mod_jk\nJkWorkersFile conf/workers.properties\n"
        "JkLogFile logs/mod_jk.log\nJkLogLevel info\nJkMount /* lb\n"
    )
    return conf, {"conf/workers.properties": workers}


def start_cluster(pyhttpd_factory):  # noqa: ANN001, ANN201
    nodes = []
    for name in ("node1", "node2"):
        conf, files = node_conf(name)
        nodes.append(pyhttpd_factory(conf, extra_listens=("ajp13",), files=files, start_servers=1))
    conf, files = front_conf(balancer(*nodes))
    front = pyhttpd_factory(conf, files=files)
    return front, nodes


def test_pyhttpd_mod_jk_front_forwards_everything_a_client_sends_to_a_node(pyhttpd_factory):
    front, _ = start_cluster(pyhttpd_factory)
    client = Client(front.port, source="127.0.0.2")
    page = client.page("/info/some%20path?a=1", headers={"Cookie": "flavour=mint", "X-Probe": "yes"})
    assert page["node"] in ("node1", "node2")
    assert (page["pathInfo"], page["queryString"]) == ("/info/some path", "a=1")
    assert (page["cookie.flavour"], page["header.x-probe"]) == ("mint", "yes")
    assert (page["remoteAddr"], page["remotePort"]) == ("127.0.0.2", str(client.local_port))
    assert (page["serverName"], page["serverPort"]) == ("127.0.0.1", str(front.port))
    payload = pattern(1024 * 1024)
    page = client.page("/info", method="POST", body=payload)
    assert page["body.sha256"] == hashlib.sha256(payload).hexdigest()
    chunks = (payload[i : i + 30_000] for i in range(0, len(payload), 30_000))
    page = client.page("/info", method="POST", body=chunks, headers={"Transfer-Encoding": "chunked"})
    assert page["body.sha256"] == hashlib.sha256(payload).hexdigest()
    status, headers, body = client.fetch(f"/big?bytes={5 * 1024 * 1024}")
    assert (status, body == pattern(5 * 1024 * 1024)) == (200, True)
    status, headers, _ = client.fetch("/headers")
    assert headers.get_all("Set-Cookie") == ["alpha=1; Path=/", "beta=2; HttpOnly"]
    assert headers.get_all("X-Pyhttpd-Multi") == ["one", "two"]


def test_pyhttpd_mod_jk_front_keeps_sessions_on_their_node_and_fails_over(pyhttpd_factory):
    front, (node1, _) = start_cluster(pyhttpd_factory)
    client = Client(front.port)
    cookies = {}
    for _ in range(20):
        status, headers, body = client.fetch("/session")
        page = parse_page(body.decode())
        cookies.setdefault(page["node"], headers["Set-Cookie"].split(";", 1)[0])
        if len(cookies) == 2:
            break
    assert set(cookies) == {"node1", "node2"}
    for node, cookie in cookies.items():
        pages = [client.page("/session", headers={"Cookie": cookie}) for _ in range(3)]
        assert [(p["node"], p["counter"]) for p in pages] == [(node, "2"), (node, "3"), (node, "4")]
    node1.stop()
    page = client.page("/session", headers={"Cookie": cookies["node1"]})
    assert (page["node"], page["new"]) == ("node2", "true")


def test_pyhttpd_mod_jk_front_with_the_wrong_secret_gets_403(pyhttpd_factory):
    conf, files = node_conf("node1")
    node = pyhttpd_factory(conf, extra_listens=("ajp13",), files=files)
    conf, files = front_conf("worker.list=lb\nworker.lb.type=lb\nworker.lb.balance_workers=node1\n" + member("node1", node, "nope"))
    front = pyhttpd_factory(conf, files=files)
    status, _, body = Client(front.port).fetch("/info")
    assert status == 403
    assert b"node=" not in body
    assert node.wait_for(lambda: "AJP request refused: wrong secret" in node.log_text())
