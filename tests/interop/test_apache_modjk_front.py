"""Real Apache httpd + mod_jk in front of two pyhttpd nodes (ajp13 listeners, mod_wsgi).

This is the seed's picture with pyhttpd where Tomcat stood: an lb worker over node1 and
node2 with sticky sessions by the JSESSIONID route, the AJP secret on every request, and
failover when a node dies. HTTPS is real too: Apache terminates TLS (mod_ssl) and mod_jk
forwards is_ssl and the SSL variables.
"""

from __future__ import annotations

import hashlib
import http.client
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.apps.echo_app import pattern
from tests.peers.apache import MODULES_DIR
from tests.peers.binaries import require_binary
from tests.peers.page_text import parse_page
from tests.peers.ports import free_port
from tests.server import REPO, PyHttpd

SECRET = "interop-secret"


def node_conf(name: str) -> tuple[str, dict[str, str]]:
    """Config and files of a node whose application says it is `name`."""
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from tests.apps.echo_app import make_application\n"
        f"application = make_application({name!r})\n"
    )
    conf = f"LoadModule wsgi_module modules/mod_wsgi\nWSGIScriptAlias / {{root}}/app.py\nAjpSecret {SECRET}\n"
    return conf, {"app.py": script}


@pytest.fixture
def node_factory() -> Iterator[Callable[[str], PyHttpd]]:
    """`node_factory("node1")` starts a pyhttpd node; all stop after the test."""
    nodes: list[PyHttpd] = []

    def start(name: str) -> PyHttpd:
        conf, files = node_conf(name)
        # One child per node: the test application keeps its sessions in process memory.
        node = PyHttpd(conf, extra_listens=("ajp13",), files=files, start_servers=1)
        nodes.append(node)
        return node.start()

    try:
        yield start
    finally:
        for node in nodes:
            node.close()
            print(node.log_text())


def member(name: str, node: PyHttpd, secret: str | None = SECRET) -> str:
    lines = [
        f"worker.{name}.type=ajp13",
        f"worker.{name}.host=127.0.0.1",
        f"worker.{name}.port={node.ports[1]}",
        f"worker.{name}.route={name}",
    ]
    if secret is not None:
        lines.append(f"worker.{name}.secret={secret}")
    return "\n".join(lines) + "\n"


def balancer(node1: PyHttpd, node2: PyHttpd) -> str:
    return (
        "worker.list=lb\n"
        "worker.lb.type=lb\n"
        "worker.lb.balance_workers=node1,node2\n"
        "worker.lb.sticky_session=true\n" + member("node1", node1) + member("node2", node2)
    )


class Client:
    """HTTP(S) requests to Apache from a chosen loopback source address."""

    def __init__(self, port: int, source: str = "127.0.0.1", tls: bool = False) -> None:
        self.port, self.source, self.tls = port, source, tls
        self.local_port = 0

    def fetch(
        self, target: str, method: str = "GET", body=None, headers: dict[str, str] | None = None  # noqa: ANN001
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=60, source_address=(self.source, 0), context=context
            )
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60, source_address=(self.source, 0))
        try:
            chunked = (headers or {}).get("Transfer-Encoding") == "chunked"
            connection.request(method, target, body=body, headers=headers or {}, encode_chunked=chunked)
            self.local_port = connection.sock.getsockname()[1]
            response = connection.getresponse()
            return response.status, response.msg, response.read()
        finally:
            connection.close()

    def page(self, target: str, **kwargs) -> dict[str, str]:  # noqa: ANN003
        status, _, body = self.fetch(target, **kwargs)
        assert status == 200, body
        return parse_page(body.decode())


@pytest.fixture
def cluster(apache_factory, node_factory):  # noqa: ANN001, ANN201
    """Apache + mod_jk (lb over node1 and node2) and the two nodes."""
    node1, node2 = node_factory("node1"), node_factory("node2")
    apache = apache_factory(workers_properties=balancer(node1, node2), jk_conf="JkMount /* lb")
    return apache, node1, node2


def test_get_through_apache_reaches_a_node_with_the_request_as_the_client_sent_it(cluster):
    apache, _, _ = cluster
    client = Client(apache.port)
    status, headers, body = client.fetch("/info/some%20path?a=1&b=2", headers={"X-Probe": "yes"})
    page = parse_page(body.decode())
    assert status == 200
    assert "mod_jk" in headers["Server"]
    assert page["node"] in ("node1", "node2")
    assert (page["method"], page["scriptName"], page["pathInfo"]) == ("GET", "", "/info/some path")
    assert page["queryString"] == "a=1&b=2"
    assert page["header.x-probe"] == "yes"
    assert (page["serverName"], page["serverPort"]) == ("127.0.0.1", str(apache.port))
    assert page["scheme"] == "http" and "https" not in page


def test_remote_address_and_port_are_the_clients_not_apaches(cluster):
    apache, _, _ = cluster
    client = Client(apache.port, source="127.0.0.2")
    page = client.page("/info")
    assert (page["remoteAddr"], page["remotePort"]) == ("127.0.0.2", str(client.local_port))


def test_one_megabyte_post_arrives_whole(cluster):
    apache, _, _ = cluster
    payload = pattern(1024 * 1024)
    page = Client(apache.port).page("/info", method="POST", body=payload, headers={"Content-Type": "application/octet-stream"})
    assert (page["body.bytes"], page["contentLength"]) == (str(len(payload)), str(len(payload)))
    assert page["body.sha256"] == hashlib.sha256(payload).hexdigest()


def test_chunked_upload_arrives_whole(cluster):
    apache, _, _ = cluster
    payload = pattern(1024 * 1024 + 17)
    chunks = (payload[i : i + 30_000] for i in range(0, len(payload), 30_000))
    page = Client(apache.port).page("/info", method="POST", body=chunks, headers={"Transfer-Encoding": "chunked"})
    assert page["body.bytes"] == str(len(payload))
    assert page["body.sha256"] == hashlib.sha256(payload).hexdigest()


def test_five_megabyte_streamed_response_arrives_whole(cluster):
    apache, _, _ = cluster
    status, headers, body = Client(apache.port).fetch(f"/big?bytes={5 * 1024 * 1024}")
    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked"
    assert body == pattern(5 * 1024 * 1024)


def test_headers_and_cookies_travel_both_ways(cluster):
    apache, _, _ = cluster
    client = Client(apache.port)
    page = client.page("/info", headers={"Cookie": "flavour=mint; size=large", "X-Multi": "a"})
    assert (page["cookie.flavour"], page["cookie.size"], page["header.x-multi"]) == ("mint", "large", "a")
    status, headers, body = client.fetch("/headers")
    assert status == 200
    assert headers.get_all("X-Pyhttpd-Multi") == ["one", "two"]
    assert headers.get_all("Set-Cookie") == ["alpha=1; Path=/", "beta=2; HttpOnly"]
    status, _, body = client.fetch("/status?code=418")
    assert (status, body) == (418, b"status=418\n")


def _session_on(client: Client, node: str) -> str:
    """A new session id that ends in `.node` (the balancer alternates between the nodes)."""
    for _ in range(20):
        status, headers, body = client.fetch("/session")
        page = parse_page(body.decode())
        if page["node"] == node:
            cookie = headers["Set-Cookie"].split(";", 1)[0]
            assert cookie == f"JSESSIONID={page['session']}"
            assert page["session"].endswith(f".{node}")
            return cookie
    raise AssertionError(f"the balancer never chose {node}")


def test_sticky_sessions_follow_the_route_in_jsessionid(cluster):
    apache, _, _ = cluster
    client = Client(apache.port)
    cookies = {node: _session_on(client, node) for node in ("node1", "node2")}
    for node, cookie in cookies.items():
        pages = [client.page("/session", headers={"Cookie": cookie}) for _ in range(4)]
        assert [p["node"] for p in pages] == [node] * 4
        assert [p["counter"] for p in pages] == ["2", "3", "4", "5"]


def test_failover_to_the_other_node_when_one_is_killed(cluster):
    apache, node1, _ = cluster
    client = Client(apache.port)
    cookie = _session_on(client, "node1")
    assert client.page("/session", headers={"Cookie": cookie})["node"] == "node1"
    node1.stop()
    page = client.page("/session", headers={"Cookie": cookie})
    assert page["node"] == "node2"
    assert page["session"].endswith(".node2")  # a new session: the nodes do not replicate here
    assert {client.page("/info")["node"] for _ in range(4)} == {"node2"}


@pytest.mark.parametrize(("secret", "why"), [("not-the-secret", "wrong"), (None, "missing")])
def test_worker_without_the_right_secret_is_refused_with_403(apache_factory, node_factory, secret, why):
    node = node_factory("node1")
    apache = apache_factory(workers_properties="worker.list=node1\n" + member("node1", node, secret), jk_conf="JkMount /* node1")
    status, _, body = Client(apache.port).fetch("/info")
    assert status == 403
    assert b"node=" not in body
    assert node.wait_for(lambda: f"AJP request refused: {why} secret (AjpSecret)" in node.log_text())


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 (openssl comes with tomcat10's dependencies)."""
    openssl = require_binary("openssl")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def test_https_at_apache_reaches_the_node_as_is_ssl_with_the_ssl_variables(apache_factory, node_factory, tmp_path):
    node1, node2 = node_factory("node1"), node_factory("node2")
    cert, key = _self_signed_certificate(tmp_path)
    tls_port = free_port()
    tls = f"""
LoadModule ssl_module {MODULES_DIR / "mod_ssl.so"}
LoadModule socache_shmcb_module {MODULES_DIR / "mod_socache_shmcb.so"}
Listen 127.0.0.1:{tls_port} https
JkOptions +ForwardKeySize
<VirtualHost 127.0.0.1:{tls_port}>
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
    SSLOptions +StdEnvVars
    JkMount /* lb
</VirtualHost>
"""
    apache = apache_factory(workers_properties=balancer(node1, node2), jk_conf="JkMount /* lb", extra_conf=tls)
    page = Client(tls_port, tls=True).page("/info")
    assert (page["scheme"], page["https"]) == ("https", "on")
    assert page["serverPort"] == str(tls_port)
    assert page["env.SSL_CIPHER"]
    assert page["env.SSL_CIPHER_USEKEYSIZE"].isdigit()
    assert page["env.SSL_PROTOCOL"].startswith("TLSv1")
    plain = Client(apache.port).page("/info")
    assert plain["scheme"] == "http" and "https" not in plain


def test_graceful_restart_of_the_nodes_loses_no_request(cluster):
    apache, node1, node2 = cluster
    client = Client(apache.port)
    before = [client.page("/info") for _ in range(10)]
    assert {page["node"] for page in before} == {"node1", "node2"}
    for node in (node1, node2):
        node.signal(signal.SIGUSR1)
    statuses = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        status, _, body = client.fetch("/info")
        statuses.append(status)
        time.sleep(0.02)
    assert set(statuses) == {200}
    assert parse_page(body.decode())["pid"] not in {page["pid"] for page in before}
    assert all(node.proc is not None and node.proc.poll() is None for node in (node1, node2))
