"""pyhttpd's mod_jk in front of a real Tomcat 10 over AJP13."""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.parse
from collections.abc import Iterator

import pytest

from tests.peers.binaries import require_binary
from tests.peers.page_text import parse_page
from tests.peers.tomcat import CATALINA_SH, Tomcat
from tests.server import PyHttpd

pytestmark = pytest.mark.interop

SECRET = "interop-secret"


def jk_server(ajp_port: int, secret: str, *, jk_conf: str = "JkMount /* node1", **workers: object) -> PyHttpd:
    properties = (
        "worker.list=node1\nworker.node1.type=ajp13\nworker.node1.host=127.0.0.1\n"
        f"worker.node1.port={ajp_port}\nworker.node1.secret={secret}\n"
        + "".join(f"worker.node1.{key}={value}\n" for key, value in workers.items())
    )
    return PyHttpd(
        "LoadModule jk_module modules/mod_jk\nJkWorkersFile conf/workers.properties\n"
        f"JkLogFile logs/mod_jk.log\n{jk_conf}\n",
        files={"conf/workers.properties": properties},
        start_servers=2,
        threads_per_child=8,
    )


def fetch(server: PyHttpd, target: str, method: str = "GET", body=None,  # noqa: ANN001
          headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(method, target, body=body, headers=headers or {},
                           encode_chunked=body is not None and not isinstance(body, bytes))
        response = connection.getresponse()
        return response.status, response.msg, response.read()
    finally:
        connection.close()


def pattern(size: int) -> bytes:
    period = bytes(range(251))
    return (period * (size // 251 + 1))[:size]


@pytest.fixture(scope="module")
def tomcat() -> Iterator[Tomcat]:
    require_binary(str(CATALINA_SH))
    require_binary("java")
    with Tomcat(route="node1", ajp_secret=SECRET) as peer:
        yield peer


@pytest.fixture(scope="module")
def front(tomcat: Tomcat) -> Iterator[PyHttpd]:
    with jk_server(tomcat.ajp_port, SECRET) as server:
        yield server


def test_get_with_query_string_and_non_ascii_path_reaches_the_servlet(front):
    status, _, body = fetch(front, "/info/caf%C3%A9%20x?a=1&b=%C3%A9&c")
    info = parse_page(body.decode())
    assert status == 200
    assert info["node"] == "node1"
    assert info["requestURI"] == "/info/caf%C3%A9%20x"
    assert info["pathInfo"] == "/café x"
    assert info["queryString"] == "a=1&b=%C3%A9&c"
    assert info["serverPort"] == str(front.port)
    assert info["remoteAddr"] == "127.0.0.1"
    assert info["scheme"] == "http"


def test_request_headers_and_cookies_reach_the_servlet(front):
    status, _, body = fetch(front, "/info.jsp", headers={
        "X-Probe": "yes", "Cookie": "flavour=mint; size=large", "Accept-Language": "fr",
        "User-Agent": "interop/1",
    })
    info = parse_page(body.decode())
    assert status == 200
    assert info["header.x-probe"] == "yes"
    assert info["cookie.flavour"] == "mint"
    assert info["cookie.size"] == "large"
    assert info["header.accept-language"] == "fr"
    assert info["header.user-agent"] == "interop/1"


def test_one_megabyte_post_arrives_intact(front):
    payload = bytes(range(256)) * 4096
    status, _, body = fetch(front, "/info.jsp", "POST", payload, {"Content-Type": "application/octet-stream"})
    info = parse_page(body.decode())
    assert status == 200
    assert info["body.bytes"] == str(len(payload))
    assert info["body.sha256"] == hashlib.sha256(payload).hexdigest()


def test_chunked_upload_arrives_intact(front):
    parts = [bytes([i]) * (1000 + i * 977) for i in range(60)]
    status, _, body = fetch(front, "/info.jsp", "POST", iter(parts), {"Content-Type": "application/octet-stream"})
    info = parse_page(body.decode())
    assert status == 200
    assert info["body.bytes"] == str(sum(map(len, parts)))
    assert info["body.sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


def test_five_megabyte_response_streams_back_intact(front):
    size = 5 * 1024 * 1024
    status, headers, body = fetch(front, f"/big.jsp?bytes={size}")
    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked"
    assert body == pattern(size)


def test_response_with_content_length_keeps_it(front):
    status, headers, body = fetch(front, "/big.jsp?bytes=100000&length=1")
    assert (status, headers["Content-Length"]) == (200, "100000")
    assert body == pattern(100000)


def test_status_codes_redirects_and_response_headers_pass_through(front):
    status, _, body = fetch(front, "/status.jsp?code=418")
    assert (status, body) == (418, b"status=418\n")
    status, headers, _ = fetch(front, "/redirect.jsp?to=/elsewhere")
    assert (status, headers["Location"]) == (302, "/elsewhere")
    status, headers, _ = fetch(front, "/headers.jsp")
    assert headers.get_all("X-Pyhttpd-Multi") == ["one", "two"]
    assert headers.get_all("Set-Cookie") == ["alpha=1; Path=/", "beta=2; HttpOnly"]
    status, _, body = fetch(front, "/no-such-page.jsp")
    assert status == 404
    assert b"Apache Tomcat" in body  # Tomcat's own page: it sent a body


def test_session_cookie_comes_back_with_the_route(front):
    _, headers, body = fetch(front, "/session.jsp")
    first = parse_page(body.decode())
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    _, _, body = fetch(front, "/session.jsp", headers={"Cookie": cookie})
    second = parse_page(body.decode())
    assert first["session"].endswith(".node1")
    assert (second["session"], second["counter"]) == (first["session"], "2")


def test_wrong_secret_gets_tomcats_403(tomcat):
    with jk_server(tomcat.ajp_port, "not-the-secret") as server:
        status, _, body = fetch(server, "/info.jsp")
    assert status == 403
    assert b"node=" not in body


def test_stopped_tomcat_gives_503_fast_and_a_restarted_one_is_used_at_once():
    require_binary(str(CATALINA_SH))
    require_binary("java")
    with Tomcat(route="node9", ajp_secret=SECRET) as peer, \
            jk_server(peer.ajp_port, SECRET, socket_connect_timeout=1000) as server:
        for _ in range(8):  # fill the children's pools
            assert fetch(server, "/info.jsp")[0] == 200
        peer.stop()
        started = time.monotonic()
        statuses = [fetch(server, "/info.jsp")[0] for _ in range(4)]
        assert statuses == [503] * 4
        assert time.monotonic() - started < 4 * 1.5
        peer.start()
        statuses = [fetch(server, "/info.jsp")[0] for _ in range(20)]
        assert statuses == [200] * 20
        assert "node=node9" in fetch(server, "/info.jsp")[2].decode()


def test_query_string_with_reserved_characters_is_passed_verbatim(front):
    query = "q=" + urllib.parse.quote("a b&c=d/é", safe="") + "&flag"
    status, _, body = fetch(front, f"/info.jsp?{query}")
    assert status == 200
    assert parse_page(body.decode())["queryString"] == query
