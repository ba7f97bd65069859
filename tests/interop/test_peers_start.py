"""The real peers start, serve what the interop tests rely on, and stop."""

from __future__ import annotations

import hashlib
import http.client
import urllib.parse

import pytest
import redis

from tests.peers.binaries import require_binary
from tests.peers.page_text import parse_page
from tests.peers.ports import free_port, wait_for_port

SECRET = "interop-secret"


def fetch(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Status, headers and body of one request (no redirects followed)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.msg, response.read()
    finally:
        connection.close()


def pattern(size: int) -> bytes:
    """The bytes big.jsp sends: byte i is i % 251."""
    period = bytes(range(251))
    return (period * (size // 251 + 1))[:size]


def workers_properties(ajp_port: int, secret: str) -> str:
    return (
        "worker.list=node1\n"
        "worker.node1.type=ajp13\n"
        "worker.node1.host=127.0.0.1\n"
        f"worker.node1.port={ajp_port}\n"
        f"worker.node1.secret={secret}\n"
    )


def test_tomcat_info_page_describes_the_request(tomcat_factory):
    tomcat = tomcat_factory(route="node1", ajp_secret=SECRET)
    status, _, body = fetch(
        tomcat.url("info/some%20path?a=1&b=2"),
        headers={"X-Probe": "yes", "Cookie": "flavour=mint"},
    )
    info = parse_page(body.decode())
    assert status == 200
    assert info["node"] == "node1"
    assert info["method"] == "GET"
    assert info["requestURI"] == "/info/some%20path"
    assert info["pathInfo"] == "/some path"
    assert info["queryString"] == "a=1&b=2"
    assert info["header.x-probe"] == "yes"
    assert info["cookie.flavour"] == "mint"
    assert info["serverPort"] == str(tomcat.http_port)
    assert info["body.bytes"] == "0"


def test_tomcat_info_page_hashes_a_one_megabyte_post_body(tomcat_factory):
    tomcat = tomcat_factory()
    payload = bytes(range(256)) * 4096
    status, _, body = fetch(
        tomcat.url("info.jsp"),
        "POST",
        payload,
        {"Content-Type": "application/octet-stream"},
    )
    info = parse_page(body.decode())
    assert status == 200
    assert info["body.bytes"] == str(len(payload))
    assert info["body.sha256"] == hashlib.sha256(payload).hexdigest()


def test_tomcat_session_page_counts_requests_in_a_session_named_after_the_route(tomcat_factory):
    tomcat = tomcat_factory(route="node7")
    _, headers, body = fetch(tomcat.url("session.jsp"))
    first = parse_page(body.decode())
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    _, _, body = fetch(tomcat.url("session.jsp"), headers={"Cookie": cookie})
    second = parse_page(body.decode())
    assert first["session"].endswith(".node7")
    assert cookie == f"JSESSIONID={first['session']}"
    assert (first["counter"], first["new"]) == ("1", "true")
    assert (second["session"], second["counter"], second["new"]) == (first["session"], "2", "false")


def test_tomcat_big_page_streams_five_megabytes_of_the_pattern(tomcat_factory):
    tomcat = tomcat_factory()
    size = 5 * 1024 * 1024
    status, headers, body = fetch(tomcat.url(f"big.jsp?bytes={size}"))
    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked"
    assert body == pattern(size)


def test_tomcat_status_redirect_and_headers_pages_answer_as_asked(tomcat_factory):
    tomcat = tomcat_factory()
    status, _, body = fetch(tomcat.url("status.jsp?code=418"))
    assert (status, body) == (418, b"status=418\n")
    status, headers, _ = fetch(tomcat.url("redirect.jsp?to=/elsewhere"))
    assert (status, headers["Location"]) == (302, "/elsewhere")
    status, headers, _ = fetch(tomcat.url("headers.jsp"))
    assert headers.get_all("X-Pyhttpd-Multi") == ["one", "two"]
    assert headers.get_all("Set-Cookie") == ["alpha=1; Path=/", "beta=2; HttpOnly"]


def test_tomcat_restart_keeps_its_ports_and_test_webapp_under_a_context_path(tomcat_factory):
    tomcat = tomcat_factory(context_path="/test")
    ports = (tomcat.http_port, tomcat.ajp_port)
    tomcat.restart()
    status, _, body = fetch(tomcat.url("info.jsp"))
    assert (tomcat.http_port, tomcat.ajp_port) == ports
    assert status == 200
    assert parse_page(body.decode())["contextPath"] == "/test"


def test_apache_serves_a_static_file_from_its_document_root(apache_factory):
    apache = apache_factory()
    (apache.document_root / "hello.txt").write_text("hello from httpd\n")
    status, headers, body = fetch(apache.url("/hello.txt"))
    assert (status, body) == (200, b"hello from httpd\n")
    assert headers["Server"].startswith("Apache/2.4")


def test_apache_with_mod_jk_forwards_to_tomcat_over_ajp_with_the_secret(
    tomcat_factory, apache_factory
):
    tomcat = tomcat_factory(route="node1", ajp_secret=SECRET)
    apache = apache_factory(
        workers_properties=workers_properties(tomcat.ajp_port, SECRET),
        jk_conf="JkMount /* node1",
    )
    payload = b"p" * (1024 * 1024)
    status, headers, body = fetch(apache.url("/info.jsp?via=jk"), "POST", payload)
    info = parse_page(body.decode())
    assert status == 200
    assert "mod_jk" in headers["Server"]
    assert info["node"] == "node1"
    assert info["queryString"] == "via=jk"
    assert info["serverPort"] == str(apache.port)
    assert info["body.sha256"] == hashlib.sha256(payload).hexdigest()
    status, _, body = fetch(apache.url("/big.jsp?bytes=5242880"))
    assert (status, body) == (200, pattern(5242880))


def test_tomcat_refuses_a_wrong_ajp_secret_so_apache_answers_403(tomcat_factory, apache_factory):
    tomcat = tomcat_factory(route="node1", ajp_secret=SECRET)
    apache = apache_factory(
        workers_properties=workers_properties(tomcat.ajp_port, "not-the-secret"),
        jk_conf="JkMount /* node1",
    )
    status, _, body = fetch(apache.url("/info.jsp"))
    assert status == 403
    assert b"node=" not in body


def test_redis_answers_ping_and_forgets_everything_on_restart(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    assert client.ping() is True
    client.set("key", "value")
    redis_server.restart()
    assert client.get("key") is None


def test_stopped_peer_releases_its_port(redis_server):
    redis_server.stop()
    assert not redis_server.running
    with pytest.raises(TimeoutError):
        wait_for_port(redis_server.host, redis_server.port, timeout=0.2)


def test_missing_peer_binary_skips_locally(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_binary(f"/nonexistent/peer-{free_port()}")


def test_missing_peer_binary_fails_on_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must never skip"):
        require_binary(f"/nonexistent/peer-{free_port()}")
