"""HTTP/1.1 against a real pyhttpd (master, gevent children): keep-alive, pipelining,
chunked and 100-continue uploads, HEAD, HTTP/1.0, large files, slow clients."""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import time

import pytest

from tests.apps.echo_app import pattern
from tests.integration.raw_http import Client
from tests.peers.page_text import parse_page
from tests.server import PyHttpd
from tests.unit.test_ajp_connection import ECHO_APP

BIG = pattern(5 * 1024 * 1024 + 17)
CONF = f"""
LoadModule wsgi_module modules/mod_wsgi
WSGIScriptAlias /app {ECHO_APP}
"""


@pytest.fixture(scope="module")
def server():
    s = PyHttpd(CONF, files={"htdocs/hello.txt": "hello\n", "htdocs/big.bin": BIG}, start_servers=1, threads_per_child=8)
    s.start()
    yield s
    s.close()


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def test_one_keep_alive_connection_serves_many_requests(server):
    with Client(server.port) as client:
        pids = set()
        for i in range(50):
            resp = client.request(f"/app/info?n={i}")
            assert resp.status == 200
            page = parse_page(resp.body.decode())
            assert page["queryString"] == f"n={i}"
            pids.add(page["pid"])
            assert "connection" not in resp.headers
        assert len(pids) == 1


def test_pipelined_burst_is_answered_in_order(server):
    with Client(server.port) as client:
        client.sock.sendall(b"".join(
            f"GET /app/info?n={i} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode() for i in range(100)
        ))
        for i in range(100):
            resp = client.read_response()
            assert parse_page(resp.body.decode())["queryString"] == f"n={i}"


def test_chunked_upload_reaches_the_application_whole(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    pieces = (BIG[i : i + 100_000] for i in range(0, len(BIG), 100_000))
    conn.request("POST", "/app/info", body=pieces, headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
    page = parse_page(conn.getresponse().read().decode())
    conn.close()
    assert int(page["body.bytes"]) == len(BIG)
    assert page["body.sha256"] == hashlib.sha256(BIG).hexdigest()


def test_expect_100_continue_upload(server):
    body = b"x" * 70_000
    with Client(server.port) as client:
        client.sock.sendall(
            b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 70000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim = client.read_response()
        assert interim.status == 100
        client.sock.sendall(body)
        page = parse_page(client.read_response().body.decode())
        assert page["body.sha256"] == hashlib.sha256(body).hexdigest()
        assert client.request("/hello.txt").body == b"hello\n"  # still in step


def test_head_has_the_get_headers_and_no_body(server):
    with Client(server.port) as client:
        head = client.request("/hello.txt", method="HEAD")
        get = client.request("/hello.txt")
    assert head.status == get.status == 200
    assert head.headers["content-length"] == get.headers["content-length"] == "6"
    assert head.body == b""
    assert get.body == b"hello\n"


def test_http10_client_gets_its_answer_and_a_close(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
        raw = read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in raw
    assert raw.endswith(b"\r\n\r\nhello\n")


def test_connection_close_is_honoured(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        request = b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        sock.sendall(request)
        raw = read_until_closed(sock)
    assert raw.count(b"HTTP/1.1 200 OK") == 1


def test_large_file_arrives_whole(server):
    with Client(server.port) as client:
        resp = client.request("/big.bin")
        again = client.request("/hello.txt")
    assert resp.body == BIG
    assert again.body == b"hello\n"


def test_large_file_to_a_reader_that_stalls_arrives_whole(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        received = bytearray(sock.recv(16384))
        for _ in range(3):  # the socket buffers fill up and the server must wait for room
            time.sleep(0.3)
            received += sock.recv(16384)
        while data := sock.recv(65536):
            received += data
    assert received.endswith(BIG)


def test_slow_clients_do_not_hold_up_others(server):
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(5)]
    try:
        for sock in slow:
            sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: loc")
        started = time.monotonic()
        with Client(server.port) as client:
            assert client.request("/hello.txt").status == 200
        assert time.monotonic() - started < 1.0
    finally:
        for sock in slow:
            sock.close()


def test_a_long_pipelined_run_from_one_client_does_not_hold_up_the_others(pyhttpd_factory):
    server = pyhttpd_factory("MaxKeepAliveRequests 0\n", files={"htdocs/hello.txt": "hello\n"}, start_servers=1)
    count = 20000
    one = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    answered = [0]

    def read_all() -> None:
        tail = b""
        while answered[0] < count and (data := one.recv(1 << 20)):
            data = tail + data
            answered[0] += data.count(b"\r\n\r\nhello\n")
            tail = data[-9:]  # shorter than the pattern: nothing is counted twice

    reader = threading.Thread(target=read_all)
    reader.start()
    try:
        one.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n" * count)
        while answered[0] < 100:
            time.sleep(0.001)
        with Client(server.port) as other:
            assert other.request("/hello.txt").status == 200
        # The other client was answered while the long run was still being served.
        assert answered[0] < count // 2
    finally:
        reader.join(60)
        one.close()
    assert answered[0] == count


def test_date_and_server_headers(server):
    with Client(server.port) as client:
        resp = client.request("/hello.txt")
    assert resp.headers["server"].startswith("pyhttpd/")
    assert resp.headers["date"].endswith(" GMT")
