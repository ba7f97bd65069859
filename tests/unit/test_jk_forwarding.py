"""mod_jk forwards a mapped request over AJP13 and streams the response back."""

from __future__ import annotations

import hashlib

from tests.unit.jk_fake_container import Exchange, FakeContainer
from tests.unit.jk_request import ajp_worker, jk_config, page, serve


def test_mapped_get_reaches_the_container_with_query_headers_and_attributes(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port, secret="s3cret"))
        r, client = serve(config, "GET /app/info?a=1&b=2", {"Cookie": "x=1", "X-Probe": "yes"})
        info = page(client)
    assert client.status == 200
    assert info["method"] == "GET"
    assert info["uri"] == "/app/info"
    assert info["query"] == "a=1&b=2"
    assert info["secret"] == "s3cret"
    assert info["header.cookie"] == "x=1"
    assert info["header.x-probe"] == "yes"
    assert info["header.content-length"] == "0"  # AJP reads a missing length as "a body follows"
    assert info["server_name"] == "www.example.com"
    assert info["server_port"] == "8080"
    assert info["attr.AJP_REMOTE_PORT"] == "40000"
    assert info["attr.AJP_LOCAL_ADDR"] == "127.0.0.1"
    assert info["attr.JK_LB_ACTIVATION"] == "ACT"
    assert r.notes["JK_WORKER_NAME"] == "node1"
    assert r.notes["JK_WORKER_TYPE"] == "ajp13"
    assert client.content_type == "text/plain"


def test_non_ascii_path_is_forwarded_percent_encoded(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        _, client = serve(config, "GET /caf%C3%A9/%E6%97%A5%20x;jsessionid=A.n1")
    assert page(client)["uri"] == "/caf%C3%A9/%E6%97%A5%20x;jsessionid=A.n1"


def test_forward_uri_compat_unparsed_sends_the_raw_request_uri(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port),
                           "JkMount /* node1\nJkOptions +ForwardURICompatUnparsed")
        _, client = serve(config, "GET /a%2Fb/../c?q=1")
    assert page(client)["uri"] == "/a%2Fb/../c"


def test_post_body_with_content_length_arrives_intact(tmp_path):
    payload = bytes(range(256)) * 4096  # 1 MiB
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        _, client = serve(config, "POST /upload", {"Content-Length": str(len(payload))}, payload)
    info = page(client)
    assert info["body.bytes"] == str(len(payload))
    assert info["body.sha256"] == hashlib.sha256(payload).hexdigest()


def test_chunked_upload_is_streamed_on_get_body_chunk(tmp_path):
    parts = [b"a" * 1000, b"b" * 70000, b"c" * 5]
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        _, client = serve(config, "PUT /upload", {"Transfer-Encoding": "chunked"}, list(parts))
        forwarded = dict(tomcat.requests[0].headers)
    info = page(client)
    assert info["body.sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
    assert "content-length" not in {name.lower() for name in forwarded}


def test_large_response_streams_back_intact(tmp_path):
    body = bytes(i % 251 for i in range(5 * 1024 * 1024))

    def big(exchange: Exchange) -> None:
        exchange.respond(200, body, [("Content-Type", "application/octet-stream")])

    with FakeContainer(big) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        _, client = serve(config, "GET /big")
    assert bytes(client.out) == body
    assert client.writes < len(body) // 8184  # chunks already received go out together


def test_flush_packets_writes_and_flushes_each_chunk(tmp_path):
    def three(exchange: Exchange) -> None:
        exchange.headers(200)
        for part in (b"one", b"two", b"three"):
            exchange.chunk(part)
        exchange.end()

    with FakeContainer(three) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port), "JkMount /* node1\nJkOptions +FlushPackets")
        _, client = serve(config, "GET /x")
    assert bytes(client.out) == b"onetwothree"
    assert client.writes == 3
    assert client.flushes >= 3


def test_status_headers_and_cookies_pass_through(tmp_path):
    def redirect(exchange: Exchange) -> None:
        exchange.respond(302, b"", [("Location", "/elsewhere"), ("Set-Cookie", "a=1"),
                                    ("Set-Cookie", "b=2"), ("Content-Length", "0")])

    with FakeContainer(redirect) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        _, client = serve(config, "GET /go")
    assert client.status == 302
    assert client.header("Location") == "/elsewhere"
    assert [v for k, v in client.headers if k == "Set-Cookie"] == ["a=1", "b=2"]


def test_error_status_without_body_gets_httpds_error_page(tmp_path):
    def forbidden(exchange: Exchange) -> None:
        exchange.respond(403, b"", [("Content-Length", "0")], reuse=False)

    with FakeContainer(forbidden) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        _, client = serve(config, "GET /secret")
    assert client.status == 403
    assert b"Forbidden" in client.out


def test_error_status_with_a_body_keeps_the_containers_body(tmp_path):
    def not_found(exchange: Exchange) -> None:
        exchange.respond(404, b"tomcat says no\n")

    with FakeContainer(not_found) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        _, client = serve(config, "GET /missing")
    assert (client.status, bytes(client.out)) == (404, b"tomcat says no\n")


def test_head_request_gets_headers_only(tmp_path):
    def head(exchange: Exchange) -> None:
        exchange.respond(200, b"", [("Content-Length", "42")])

    with FakeContainer(head) as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port))
        _, client = serve(config, "HEAD /x")
    assert client.status == 200
    assert client.header("Content-Length") == "42"
    assert client.out == b""


def test_jk_env_var_is_sent_as_request_attribute(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port),
                           "JkMount /* node1\nJkEnvVar SSL_CLIENT_S_DN\nJkEnvVar DEPLOY prod")
        _, client = serve(config, "GET /x")
    info = page(client)
    assert info["attr.DEPLOY"] == "prod"
    assert "attr.SSL_CLIENT_S_DN" not in info  # unset and without a default: not sent


def test_request_log_format_writes_one_line_per_forwarded_request(tmp_path):
    with FakeContainer() as tomcat:
        config = jk_config(tmp_path, ajp_worker(tomcat.port),
                           'JkMount /* node1\nJkRequestLogFormat "%w %V %m %U%q %s"')
        serve(config, "GET /app/page?x=1")
    log = (tmp_path / "logs" / "mod_jk.log").read_text()
    assert "node1 www.example.com GET /app/page?x=1 200" in log
