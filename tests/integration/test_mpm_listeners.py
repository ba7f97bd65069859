"""Listening sockets: IPv4 and IPv6, ListenBacklog, kept open across restarts."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess

import pytest

from pyhttpd.core import Listen
from pyhttpd.listeners import ListenError, close_listeners, open_listeners
from tests.peers.ports import free_port


def listen(host: str, port: int, protocol: str = "http") -> Listen:
    return Listen(host, port, protocol, "conf/httpd.conf", 7)


def free_ipv6_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def test_reopening_keeps_the_socket_of_an_address_still_configured():
    a, b = free_port(), free_port()
    first, _ = open_listeners([listen("127.0.0.1", a), listen("127.0.0.1", b)], 16)
    try:
        second, vanished = open_listeners([listen("127.0.0.1", a, "ajp13")], 16, first)
        assert second[0].sock is first[0].sock
        assert second[0].listen.protocol == "ajp13"
        assert [v.key for v in vanished] == [("127.0.0.1", b)]
    finally:
        close_listeners(first)


def test_listen_backlog_is_the_queue_length_the_kernel_reports():
    port = free_port()
    listeners, _ = open_listeners([listen("127.0.0.1", port)], 37)
    try:
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert out.split()[2] == "37"  # Send-Q of a listening socket is its backlog
    finally:
        close_listeners(listeners)


def test_an_address_in_use_is_an_error_naming_file_line_and_address():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as e:
            open_listeners([listen("127.0.0.1", port)], 16)
    assert str(e.value).startswith(f"conf/httpd.conf:7: Listen: could not bind to address 127.0.0.1:{port}")


def test_server_answers_on_ipv6_and_ipv4_and_keeps_both_over_a_graceful_restart(pyhttpd_factory):
    port6 = free_ipv6_port()
    server = pyhttpd_factory(f"Listen [::1]:{port6}\n", files={"htdocs/a.txt": "six"})

    def get(host: str, port: int) -> bytes:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", "/a.txt", headers={"Connection": "close"})
        body = conn.getresponse().read()
        conn.close()
        return body

    assert get("::1", port6) == b"six"
    assert get("127.0.0.1", server.port) == b"six"
    server.signal(signal.SIGUSR1)
    for _ in range(20):
        assert get("::1", port6) == b"six"


def test_server_that_cannot_bind_exits_with_the_reason(tmp_path):
    from tests.server import PyHttpd

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = PyHttpd(f"Listen 127.0.0.1:{port}\n", root=str(tmp_path))
        with pytest.raises(RuntimeError):
            server.start(timeout=5)
        assert server.proc.wait(5) == 1
        server.close()
    assert f"could not bind to address 127.0.0.1:{port}" in server.log_text()
