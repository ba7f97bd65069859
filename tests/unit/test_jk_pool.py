"""mod_jk's pooled AJP13 connection on gevent sockets, as a child uses it: replies read
straight from the OS socket, waits on the hub, timeouts, and the idle connection check."""

from __future__ import annotations

import gevent
import pytest
from gevent import socket as gsocket

from modules.mod_jk.ajp13 import (
    EndResponse,
    SendBodyChunk,
    SendHeaders,
    decode_container_message,
    encode_end_response,
    encode_send_body_chunk,
    encode_send_headers,
)
from modules.mod_jk.pool import AjpConnection, BackendError, ReplyTimeout

REPLY = (
    encode_send_headers(SendHeaders(200, "OK", [("Content-Type", "text/plain"), ("X-Node", "node1")]))
    + encode_send_body_chunk(b"hello")
    + encode_end_response(True)
)


@pytest.fixture
def pair():
    """(our AjpConnection, the container's end) over loopback gevent sockets."""
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    sock = gsocket.create_connection(listener.getsockname())
    container, _ = listener.accept()
    listener.close()
    conn = AjpConnection(sock, 8192, None)
    yield conn, container
    conn.close()
    container.close()


def _reply(conn: AjpConnection, timeout: float | None = None) -> list[object]:
    return [decode_container_message(conn.receive(timeout)) for _ in range(3)]


def test_a_reply_split_at_any_byte_is_read_whole(pair):
    conn, container = pair
    assert conn.raw is not None  # the OS socket is read directly
    for cut in range(1, len(REPLY)):

        def backend(cut: int = cut) -> None:
            container.sendall(REPLY[:cut])
            gevent.sleep(0.001)  # the reader waits on the hub for the rest
            container.sendall(REPLY[cut:])

        sender = gevent.spawn(backend)
        headers, body, end = _reply(conn)
        sender.join()
        assert headers == SendHeaders(200, "OK", [("Content-Type", "text/plain"), ("X-Node", "node1")])
        assert body == SendBodyChunk(b"hello")
        assert end == EndResponse(True)
        assert conn.reader.pending == 0


def test_a_reply_split_at_any_byte_is_read_whole_under_a_reply_timeout(pair):
    conn, container = pair
    for cut in range(1, len(REPLY), 7):
        sender = gevent.spawn(lambda cut=cut: (container.sendall(REPLY[:cut]), gevent.sleep(0.001),
                                               container.sendall(REPLY[cut:])))
        assert isinstance(_reply(conn, 5.0)[-1], EndResponse)
        sender.join()


def test_no_reply_within_reply_timeout_is_a_reply_timeout(pair):
    conn, _ = pair
    with pytest.raises(ReplyTimeout):
        conn.receive(0.05)


def test_a_closed_backend_is_a_backend_error(pair):
    conn, container = pair
    gevent.spawn_later(0.01, container.close)
    with pytest.raises(BackendError, match="closed the connection"):
        conn.receive(None)


def test_a_request_is_sent_whole(pair):
    conn, container = pair
    big = bytes(range(256)) * 4096  # more than the socket buffers take at once
    reader = gevent.spawn(lambda: b"".join(iter(lambda: container.recv(65536), b""))[: len(big)])
    conn.send(big)
    conn.close()
    assert reader.get(timeout=10) == big


def test_an_idle_connection_is_usable_until_the_container_closes_it_or_leaves_bytes_on_it(pair):
    conn, container = pair
    assert conn.is_connected()
    container.sendall(b"AB")  # stray bytes of a response nobody read
    gevent.sleep(0.01)
    assert not conn.is_connected()


def test_a_connection_the_container_closed_is_not_usable(pair):
    conn, container = pair
    container.close()
    gevent.sleep(0.01)
    assert not conn.is_connected()
