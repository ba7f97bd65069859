"""Random and mutated requests against a real pyhttpd: whatever arrives, the answer (if
any) is a well-formed HTTP/1.1 response, and a well-formed request on a new connection
right after is served correctly by the same children."""

from __future__ import annotations

import re
import socket

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server import PyHttpd
from tests.unit.test_ajp_connection import ECHO_APP

CONF = f"""
LoadModule wsgi_module modules/mod_wsgi
WSGIScriptAlias /app {ECHO_APP}
RequestReadTimeout header=2 body=2
Timeout 5
"""
STATUS_LINE = re.compile(rb"HTTP/1\.1 [1-5][0-9][0-9] [^\r\n]*\r\n")
GOOD = b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
VALID = [
    GOOD,
    b"GET /app/info?a=1&b=%20 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\nCookie: a=b; c=d\r\n\r\n",
    b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world",
    b"POST /app/info HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: v\r\n\r\n",
    b"PUT /app/info HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"HEAD /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /hello.txt HTTP/1.0\r\n\r\n",
    b"GET http://localhost/hello.txt HTTP/1.1\r\nHost: other\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
]
SPECIAL = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b"%", b"%2f", b"..", b"/", b"\xff", b",", b";",
           b"0", b"-1", b"ffffffffffffffffffff", b"Transfer-Encoding: chunked\r\n", b"Content-Length: 5\r\n",
           b"Host: a\r\n", b"Expect: 100-continue\r\n", b"Connection: close\r\n", b" HTTP/1.1", b"\r\n\r\n"]


@st.composite
def mutated(draw) -> bytes:
    """A valid request with a few insertions, deletions, replacements or truncations."""
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "repeat"]))
        if kind == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(SPECIAL), st.binary(min_size=1, max_size=8)))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "repeat":
            line_end = data.find(b"\r\n", at)
            line_start = data.rfind(b"\r\n", 0, at)
            if line_start >= 0 and line_end > line_start:
                data[line_end:line_end] = data[line_start:line_end]
    return bytes(data)


@pytest.fixture(scope="module")
def server():
    s = PyHttpd(CONF, files={"htdocs/hello.txt": "hello\n"}, start_servers=2, threads_per_child=8)
    s.start()
    # The master listens before it forks: wait until both children run.
    assert s.wait_for(lambda: len(psutil.Process(s.pid).children()) == 2)
    s.children = {p.pid for p in psutil.Process(s.pid).children()}
    yield s
    s.close()


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before it has read everything
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def check_answer_and_health(server: PyHttpd, data: bytes) -> None:
    raw = exchange(server.port, data)
    if raw:
        assert STATUS_LINE.match(raw), raw[:200]
    after = exchange(server.port, GOOD)
    assert after.startswith(b"HTTP/1.1 200 OK\r\n"), after[:200]
    assert after.endswith(b"\r\n\r\nhello\n")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=mutated())
def test_mutated_requests_never_disturb_the_next_request(server, data):
    check_answer_and_health(server, data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.binary(max_size=3000))
def test_random_bytes_never_disturb_the_next_request(server, data):
    check_answer_and_health(server, data)


def test_children_survived_the_fuzzing(server):
    assert {p.pid for p in psutil.Process(server.pid).children()} == server.children
    assert "failed:" not in server.log_text()
