"""httpd's limits and timeouts against a real pyhttpd: each refusal gets its status, the
connection closes, and the same children go on serving everyone else."""

from __future__ import annotations

import socket
import time

import psutil
import pytest

from tests.integration.raw_http import Client
from tests.server import PyHttpd
from tests.unit.test_ajp_connection import ECHO_APP

CONF = f"""
LoadModule wsgi_module modules/mod_wsgi
WSGIScriptAlias /app {ECHO_APP}
LimitRequestLine 512
LimitRequestFieldSize 256
LimitRequestFields 10
KeepAliveTimeout 1
MaxKeepAliveRequests 3
RequestReadTimeout header=1-2,MinRate=500 body=1,MinRate=500
<Location /app>
    LimitRequestBody 1000
</Location>
"""


@pytest.fixture(scope="module")
def server():
    s = PyHttpd(CONF, files={"htdocs/hello.txt": "hello\n"}, start_servers=2)
    s.start()
    # The master listens before it forks: wait until both children run.
    assert s.wait_for(lambda: len(psutil.Process(s.pid).children()) == 2)
    children = {p.pid for p in psutil.Process(s.pid).children()}
    yield s
    try:
        # nothing a client sent killed a child, and no failure escaped the protocol code
        assert {p.pid for p in psutil.Process(s.pid).children()} == children
        assert "failed:" not in s.log_text()
    finally:
        s.close()


def exchange(port: int, data: bytes, wait: float = 10.0) -> bytes:
    """Send `data` and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def assert_refused(server: PyHttpd, data: bytes, status: int) -> bytes:
    """`data` followed by a good request gets only the refusal; a new connection is served."""
    raw = exchange(server.port, data + b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert raw.startswith(f"HTTP/1.1 {status} ".encode()), raw[:100]
    assert b"\r\nConnection: close\r\n" in raw
    assert raw.count(b"HTTP/1.1 ") == 1
    with Client(server.port) as client:
        assert client.request("/hello.txt").body == b"hello\n"
    return raw


def test_request_line_over_limit_request_line_is_414(server):
    target = b"/hello.txt?" + b"a" * 480
    with Client(server.port) as client:
        assert client.request(target).status == 200
    assert_refused(server, b"GET /hello.txt?" + b"a" * 600 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414)


def test_header_field_over_limit_request_field_size_is_400(server):
    with Client(server.port) as client:
        assert client.request("/hello.txt", headers={"X-Big": "b" * 240}).status == 200
    assert_refused(server, b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 300 + b"\r\n\r\n", 400)


def test_more_fields_than_limit_request_fields_is_400(server):
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(12))
    assert_refused(server, b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n" + fields + b"\r\n", 400)


def test_body_over_limit_request_body_is_413_even_while_the_client_sends_it(server):
    body = b"x" * 1_000_000
    raw = exchange(server.port, b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n" + body)
    assert raw.startswith(b"HTTP/1.1 413 ")


def test_chunked_body_over_limit_request_body_is_413(server):
    chunk = b"x" * 600
    data = b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
    data += (b"258\r\n" + chunk + b"\r\n") * 2 + b"0\r\n\r\n"
    assert_refused(server, data, 413)


def test_body_within_limit_request_body_is_served(server):
    with Client(server.port) as client:
        client.sock.sendall(b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n" + b"y" * 1000)
        resp = client.read_response()
    assert resp.status == 200
    assert b"body.bytes=1000\n" in resp.body


@pytest.mark.parametrize(
    "data",
    [
        b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
        b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: identity\r\n\r\n",
        b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nX-Fold: a\r\n b\r\n\r\n",
        b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nX-Nul: a\x00b\r\n\r\n",
        b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n",
        b"GET /hello.txt HTTP/1.1\r\n\r\n",
        b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    ids=["cl-and-te", "two-cl", "te-chunked-identity", "te-identity", "obs-fold", "nul", "bad-chunk", "no-host", "traversal"],
)
def test_malformed_and_smuggling_requests_are_400_and_closed(server, data):
    assert_refused(server, data, 400)


def test_slowloris_headers_get_408(server):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\n")
        answer = b""
        while not answer and time.monotonic() - started < 6:
            sock.sendall(b"X: y\r\n")
            time.sleep(0.3)
            try:
                answer = sock.recv(100, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 0.9 < time.monotonic() - started < 3


def test_slow_body_gets_408(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 500\r\n\r\nabc")
        started = time.monotonic()
        raw = sock.recv(100)
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 3


def test_idle_keep_alive_connection_closes_after_keep_alive_timeout(server):
    with Client(server.port) as client:
        assert client.request("/hello.txt").status == 200
        started = time.monotonic()
        assert client.sock.recv(100) == b""
        assert 0.8 < time.monotonic() - started < 3


def test_a_connection_busier_than_keep_alive_timeout_stays_open(pyhttpd_factory):
    server = pyhttpd_factory("KeepAliveTimeout 1\nMaxKeepAliveRequests 0\n", files={"htdocs/hello.txt": "hello\n"})
    with Client(server.port) as client:
        for _ in range(6):  # 2.4 s in all, each wait well inside KeepAliveTimeout 1
            assert client.request("/hello.txt").status == 200
            time.sleep(0.4)
        assert client.request("/hello.txt").status == 200


def test_max_keep_alive_requests_ends_the_connection(server):
    with Client(server.port) as client:
        statuses = [client.request("/hello.txt", headers={"Connection": "keep-alive"}) for _ in range(4)]
        with pytest.raises(ConnectionError):
            client.request("/hello.txt")
    assert [r.headers.get("keep-alive") for r in statuses] == [
        "timeout=1, max=3", "timeout=1, max=2", "timeout=1, max=1", None,
    ]
    assert statuses[-1].headers["connection"] == "close"
