"""The AJP13 listener's connection, driven over loopback with the pure codec as the web server.

Each test accepts one connection, serves it with AjpConnection in a thread, and speaks AJP13
to it the way mod_jk does: Forward Request, the first body packet unasked, more body on Get
Body Chunk, until End Response.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import pytest
from gevent import socket as gsocket

from modules.mod_jk.ajp13 import (
    MAGIC_TO_SERVER,
    CPong,
    EndResponse,
    ForwardRequest,
    GetBodyChunk,
    PacketReader,
    SendBodyChunk,
    SendHeaders,
    decode_container_message,
    encode_body_chunk,
    encode_cping,
    encode_forward_request,
    encode_shutdown,
    max_body_chunk_size,
)
from pyhttpd.ajp_connection import AjpConnection
from pyhttpd.config import Config
from pyhttpd.log import open_error_logs
from pyhttpd.scoreboard import SERVER_BUSY_KEEPALIVE, Scoreboard
from tests.apps.echo_app import pattern
from tests.peers.page_text import parse_page

ECHO_APP = Path(__file__).resolve().parents[1] / "apps" / "echo_app.py"
SECRET = "s3cret"


@dataclass
class Response:
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    chunk_sizes: list[int] = field(default_factory=list)
    body_requests: list[int] = field(default_factory=list)
    reuse: bool | None = None

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def page(self) -> dict[str, str]:
        return parse_page(self.body.decode("utf-8", "surrogateescape"))


class WebServer:
    """The web server's end of one AJP13 connection."""

    def __init__(self, sock: socket.socket, thread: threading.Thread, packet_size: int = 8192) -> None:
        self.sock = sock
        self.thread = thread
        self.packet_size = packet_size
        self.reader = PacketReader(MAGIC_TO_SERVER, packet_size)

    def message(self):  # noqa: ANN201
        """The next message from the container; None once it closed the connection."""
        while (payload := self.reader.next_packet()) is None:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.reader.feed(data)
        return decode_container_message(payload)

    def request(
        self, uri: str = "/app/info", *, body: bytes = b"", chunked: bool = False, send_first: bool = True, **fields
    ) -> Response:
        """Forward a request as mod_jk does and collect the response."""
        fields.setdefault("secret", SECRET)
        headers = list(fields.pop("headers", [("host", "node.example:8080")]))
        if not chunked:
            headers.append(("content-length", str(len(body))))
        msg = ForwardRequest(
            method=fields.pop("method", "POST" if body else "GET"),
            req_uri=uri,
            remote_addr=fields.pop("remote_addr", "192.0.2.7"),
            remote_host=fields.pop("remote_host", "192.0.2.7"),
            server_name=fields.pop("server_name", "node.example"),
            server_port=fields.pop("server_port", 8080),
            headers=headers,
            **fields,
        )
        limit = max_body_chunk_size(self.packet_size)
        pieces = [body[i : i + limit] for i in range(0, len(body), limit)]
        out = encode_forward_request(msg, self.packet_size)
        if pieces and not chunked and send_first:
            out += encode_body_chunk(pieces.pop(0), self.packet_size)
        self.sock.sendall(out)
        response = Response()
        while True:
            m = self.message()
            if m is None:
                return response
            if isinstance(m, GetBodyChunk):
                response.body_requests.append(m.length)
                self.sock.sendall(encode_body_chunk(pieces.pop(0) if pieces else b"", self.packet_size))
            elif isinstance(m, SendHeaders):
                response.status, response.reason, response.headers = m.status, m.reason, m.headers
            elif isinstance(m, SendBodyChunk):
                response.body += m.data
                response.chunk_sizes.append(len(m.data))
            elif isinstance(m, EndResponse):
                response.reuse = m.reuse
                return response
            else:
                raise AssertionError(f"unexpected {m!r}")

    def closed(self) -> bool:
        """True when the container closed the connection (EOF within the join)."""
        self.thread.join(5)
        self.sock.settimeout(5)
        return self.sock.recv(1) == b""


class Node:
    """A configuration with an ajp13 listener and the echo application; accepts connections."""

    def __init__(self, root: Path, conf: str = "", secret: str | None = SECRET) -> None:
        (root / "htdocs").mkdir(exist_ok=True)
        self.root = root
        path = root / "httpd.conf"
        secret_line = f"AjpSecret {secret}" if secret else "AjpSecretRequired Off"
        path.write_text(
            f"ServerRoot {root}\nServerName node.example\nErrorLog logs/error_log\nTimeout 10\n"
            f"Listen 127.0.0.1:8009 ajp13\n{secret_line}\n"
            f"LoadModule wsgi_module modules/mod_wsgi\nWSGIScriptAlias /app {ECHO_APP}\n{conf}\n"
        )
        self.config = Config.load(str(path))
        open_error_logs(self.config.servers)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.sockets: list[socket.socket] = []

    def connect(self, slot=None) -> WebServer:  # noqa: ANN001
        client = socket.create_connection(self.listener.getsockname())
        client.settimeout(20)
        sock, addr = self.listener.accept()
        self.sockets += [client, sock]
        connection = AjpConnection(self.config, sock, addr, None, slot)
        thread = threading.Thread(target=connection.serve, daemon=True)
        thread.start()
        return WebServer(client, thread, self.config.global_config.ajp_packet_size)

    def log(self) -> str:
        return (self.root / "logs" / "error_log").read_text()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.listener.close()


@pytest.fixture
def node(tmp_path: Path):
    node = Node(tmp_path)
    yield node
    node.close()


def test_cping_gets_cpong(node):
    web = node.connect()
    web.sock.sendall(encode_cping())
    assert isinstance(web.message(), CPong)
    web.sock.sendall(encode_cping())
    assert isinstance(web.message(), CPong)


def test_get_reaches_the_wsgi_application_and_the_connection_is_reused(node):
    web = node.connect()
    first = web.request("/app/info", query_string="a=1&b=2")
    second = web.request("/app/some%20where/")
    assert (first.status, first.reason, first.reuse) == (200, "OK", True)
    page = first.page()
    assert (page["method"], page["scriptName"], page["pathInfo"]) == ("GET", "/app", "/info")
    assert page["queryString"] == "a=1&b=2"
    assert page["requestURI"] == "/app/info?a=1&b=2"
    assert second.page()["pathInfo"] == "/some where/"
    assert second.reuse is True


def test_forwarded_client_and_server_address_fill_the_request(node):
    web = node.connect()
    page = web.request(
        remote_addr="203.0.113.9",
        remote_host="client.example",
        server_port=8443,
        req_attributes=[("AJP_REMOTE_PORT", "50123"), ("AJP_LOCAL_ADDR", "198.51.100.1")],
    ).page()
    assert (page["remoteAddr"], page["remotePort"], page["remoteHost"]) == ("203.0.113.9", "50123", "client.example")
    assert (page["serverName"], page["serverPort"]) == ("node.example", "8443")
    assert page["env.AJP_LOCAL_ADDR"] == "198.51.100.1"
    assert (page["scheme"], "https" in page) == ("http", False)


def test_a_repeated_remote_port_attribute_keeps_its_last_value(node):
    page = node.connect().request(req_attributes=[("AJP_REMOTE_PORT", "50123"), ("AJP_REMOTE_PORT", "50124")]).page()
    assert (page["remotePort"], page["env.AJP_REMOTE_PORT"]) == ("50124", "50124")


def test_server_name_is_used_when_there_is_no_host_header(node):
    page = node.connect().request(headers=[], server_name="front.example").page()
    assert page["serverName"] == "front.example"


def test_post_body_arrives_first_unasked_then_by_get_body_chunk(node):
    payload = pattern(1024 * 1024)
    response = node.connect().request("/app/info", body=payload)
    page = response.page()
    assert page["body.bytes"] == str(len(payload))
    assert page["body.sha256"] == hashlib.sha256(payload).hexdigest()
    packets = -(-len(payload) // 8186)
    assert len(response.body_requests) == packets - 1
    assert all(n <= 8186 for n in response.body_requests)


def test_chunked_body_is_pulled_until_the_empty_packet(node):
    payload = b"chunked upload " * 5000
    response = node.connect().request("/app/info", body=payload, chunked=True)
    page = response.page()
    assert "contentLength" not in page
    assert page["body.sha256"] == hashlib.sha256(payload).hexdigest()
    assert len(response.body_requests) == -(-len(payload) // 8186) + 1


def test_unread_first_body_packet_is_dropped_so_the_next_request_works(node):
    web = node.connect()
    response = web.request("/app/headers", method="POST", body=b"ignored body")
    assert (response.status, response.reuse) == (200, True)
    assert web.request("/app/info").page()["method"] == "GET"


def test_response_body_is_sent_in_chunks_that_fit_the_packet(node):
    response = node.connect().request("/app/big", query_string="bytes=300000")
    assert bytes(response.body) == pattern(300_000)
    assert max(response.chunk_sizes) == 8184


def test_ajp_packet_size_allows_bigger_packets(tmp_path):
    node = Node(tmp_path, "AjpPacketSize 16384")
    try:
        web = node.connect()
        payload = pattern(100_000)
        response = web.request("/app/info", body=payload)
        assert response.page()["body.sha256"] == hashlib.sha256(payload).hexdigest()
        assert max(response.body_requests) == 16378
        response = web.request("/app/big", query_string="bytes=100000")
        assert max(response.chunk_sizes) == 16376
    finally:
        node.close()


def test_is_ssl_sets_https_the_scheme_and_the_ssl_variables(node):
    page = node.connect().request(
        is_ssl=True,
        ssl_cipher="TLS_AES_256_GCM_SHA384",
        ssl_session="abcdef",
        ssl_cert="-----BEGIN CERTIFICATE-----",
        ssl_key_size=256,
        req_attributes=[("AJP_SSL_PROTOCOL", "TLSv1.3")],
    ).page()
    assert (page["scheme"], page["https"]) == ("https", "on")
    assert page["env.SSL_CIPHER"] == "TLS_AES_256_GCM_SHA384"
    assert page["env.SSL_SESSION_ID"] == "abcdef"
    assert page["env.SSL_CLIENT_CERT"] == "-----BEGIN CERTIFICATE-----"
    assert page["env.SSL_CIPHER_USEKEYSIZE"] == "256"
    assert page["env.SSL_PROTOCOL"] == "TLSv1.3"


def test_remote_user_auth_type_route_and_attributes_reach_the_application(node):
    page = node.connect().request(
        remote_user="alice",
        auth_type="Basic",
        route="node1",
        req_attributes=[("JK_LB_ACTIVATION", "ACT"), ("custom", "x")],
    ).page()
    assert (page["remoteUser"], page["authType"]) == ("alice", "Basic")
    assert page["env.JK_LB_ACTIVATION"] == "ACT"


def test_route_is_kept_in_the_request_notes(node):
    seen = {}

    def record(r) -> int:  # noqa: ANN001
        seen["route"] = r.notes.get("ajp_route")
        return -1

    node.config.hooks.register("fixups", record)
    node.connect().request(route="node7")
    assert seen["route"] == "node7"


def test_response_headers_and_cookies_come_back(node):
    response = node.connect().request("/app/headers", headers=[("cookie", "a=1; b=2")])
    assert response.header("X-Pyhttpd-Multi") == ["one", "two"]
    assert response.header("Set-Cookie") == ["alpha=1; Path=/", "beta=2; HttpOnly"]
    assert response.header("Content-Type") == ["text/plain; charset=utf-8"]


def test_status_and_reason_of_the_application_are_forwarded(node):
    response = node.connect().request("/app/status", query_string="code=418")
    assert (response.status, response.reason) == (418, "Custom Reason")


def test_head_request_gets_headers_and_no_body(node):
    response = node.connect().request("/app/headers", method="HEAD")
    assert (response.status, bytes(response.body), response.reuse) == (200, b"", True)


def test_application_error_gets_500_and_the_connection_stays_usable(node):
    web = node.connect()
    assert web.request("/app/raise").status == 500
    assert web.request("/app/info").status == 200
    assert "RuntimeError: the test application fails on purpose" in node.log()


def test_failure_after_the_headers_closes_without_end_response(node):
    web = node.connect()
    response = web.request("/app/raise-late")
    assert (response.status, bytes(response.body), response.reuse) == (200, b"partial ", None)
    assert web.closed()


@pytest.mark.parametrize(("secret", "why"), [("not-it", "wrong"), (None, "missing")])
def test_request_without_the_right_secret_gets_403_and_the_connection_closes(node, secret, why):
    web = node.connect()
    response = web.request("/app/info", secret=secret)
    assert (response.status, response.reuse) == (403, False)
    assert b"node=" not in response.body
    assert web.closed()
    assert f"AJP request refused: {why} secret (AjpSecret)" in node.log()


def test_without_ajp_secret_any_request_is_served(tmp_path):
    node = Node(tmp_path, secret=None)
    try:
        assert node.connect().request(secret=None).status == 200
    finally:
        node.close()


def test_malformed_packet_closes_only_that_connection(node):
    good = node.connect()
    bad = node.connect()
    bad.sock.sendall(b"\x12\x34\x00\x03\x63\x00\x00")
    assert bad.closed()
    assert "malformed AJP13 packet" in node.log()
    assert good.request().status == 200


def test_bad_magic_closes_the_connection(node):
    bad = node.connect()
    bad.sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert bad.closed()


def test_path_above_the_root_gets_400_and_the_connection_stays_usable(node):
    web = node.connect()
    response = web.request("/app/../../etc/passwd")
    assert (response.status, response.reuse) == (400, True)
    assert web.request().status == 200


def test_encoded_slash_gets_404(node):
    assert node.connect().request("/app/a%2fb").status == 404


def test_shutdown_message_closes_the_connection(node):
    web = node.connect()
    web.sock.sendall(encode_shutdown())
    assert web.closed()


def test_scoreboard_slot_counts_the_request_and_waits_in_keepalive(node):
    board = Scoreboard.create(1, 1)
    try:
        slot = board.worker(0, 0)
        web = node.connect(slot)
        web.request("/app/info", remote_addr="203.0.113.9")
        web.sock.sendall(encode_cping())
        assert isinstance(web.message(), CPong)
        record = slot.record()
        assert (record["status"], record["access_count"]) == (SERVER_BUSY_KEEPALIVE, 1)
        assert (record["client"], record["protocol"]) == ("203.0.113.9", "ajp13")
        assert record["request"] == "GET /app/info HTTP/1.1"
        del slot
    finally:
        board.close()


def _gevent_connection(node: Node) -> tuple[gsocket.socket, AjpConnection]:
    """A loopback connection on gevent sockets: the web server's end and the container's."""
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = gsocket.create_connection(listener.getsockname())
    sock, addr = listener.accept()
    listener.close()
    node.sockets += [client, sock]
    return client, AjpConnection(node.config, sock, addr, None, None)


def test_on_a_gevent_socket_a_request_split_at_any_byte_is_served(node):
    client, connection = _gevent_connection(node)
    assert connection.raw is not None  # the OS socket is read directly
    server = gevent.spawn(connection.serve)
    web = WebServer(client, server)
    msg = ForwardRequest(method="POST", req_uri="/app/info", remote_addr="192.0.2.7", server_name="node.example",
                         headers=[("host", "node.example:8080"), ("content-length", "5")], secret=SECRET)
    packet = encode_forward_request(msg) + encode_body_chunk(b"hello")
    for cut in range(1, len(packet)):
        client.sendall(packet[:cut])
        gevent.sleep(0.001)  # the container waits on the hub for the rest
        client.sendall(packet[cut:])
        messages = []
        while not isinstance(messages[-1:] and messages[-1], EndResponse):
            messages.append(web.message())
        headers, body, end = messages[0], b"".join(m.data for m in messages[1:-1]), messages[-1]
        assert (headers.status, end.reuse) == (200, True)
        assert parse_page(body.decode())["body.bytes"] == "5"
    client.close()
    server.join(5)
    assert server.dead


def test_on_a_gevent_socket_an_idle_connection_closes_after_timeout(tmp_path):
    node = Node(tmp_path, "Timeout 1")
    try:
        client, connection = _gevent_connection(node)
        server = gevent.spawn(connection.serve)
        client.sendall(encode_cping())
        assert isinstance(WebServer(client, server).message(), CPong)
        started = time.monotonic()
        assert client.recv(1) == b""  # closed by the container, idle past Timeout
        assert 0.5 < time.monotonic() - started < 3
        server.join(5)
        assert server.dead
    finally:
        node.close()


def _responses(web: WebServer, count: int) -> list[Response]:
    """The next `count` whole responses on a connection, in the order they came."""
    responses = []
    for _ in range(count):
        response = Response()
        while (m := web.message()) is not None and not isinstance(m, EndResponse):
            if isinstance(m, SendHeaders):
                response.status = m.status
            else:
                response.body += m.data
        response.reuse = m.reuse if m is not None else None
        responses.append(response)
    return responses


def _forward(target: str) -> bytes:
    uri, _, query = target.partition("?")
    return encode_forward_request(
        ForwardRequest(req_uri=uri, query_string=query or None, remote_addr="192.0.2.7", server_name="node.example",
                       headers=[("host", "node.example:8080"), ("content-length", "0")], secret=SECRET)
    )


# One batch of packets (8 x 8184 bytes) goes out while the application writes; the rest,
# about 57 KB, is held for the End Response and cannot all leave at once through the small
# socket buffers of _served(small_buffers=True).
HELD_SIZE = 122_760
HELD_TARGET = f"/app/big?bytes={HELD_SIZE}&length=declared"


def _served(node: Node, *, small_buffers: bool = False) -> tuple[WebServer, AjpConnection]:
    """A connection on gevent sockets served in a greenlet (web.thread), the web server's end."""
    client, connection = _gevent_connection(node)
    if small_buffers:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    client.settimeout(5)
    return WebServer(client, gevent.spawn(connection.serve)), connection


def _closed_by_the_web_server(web: WebServer) -> bool:
    web.sock.close()
    web.thread.join(5)
    return web.thread.dead


def test_on_a_gevent_socket_two_requests_in_one_write_get_their_responses_in_order(node):
    web, _ = _served(node)
    web.sock.sendall(_forward("/app/info?first") + _forward("/app/info?second"))
    first, second = _responses(web, 2)
    assert (first.reuse, second.reuse) == (True, True)
    assert first.page()["queryString"] == "first"
    assert second.page()["queryString"] == "second"
    assert _closed_by_the_web_server(web)


def test_on_a_gevent_socket_a_shutdown_right_after_a_request_waits_for_its_whole_response(node):
    web, _ = _served(node)
    web.sock.sendall(_forward("/app/info?last") + encode_shutdown())
    (response,) = _responses(web, 1)
    assert (response.status, response.reuse) == (200, True)
    assert response.page()["queryString"] == "last"
    assert web.message() is None  # then the connection closes
    web.thread.join(5)
    assert web.thread.dead


def test_on_a_gevent_socket_a_response_end_the_web_server_reads_late_arrives_whole(node):
    web, connection = _served(node, small_buffers=True)
    drained = []
    drain = connection.sender._drain
    connection.sender._drain = lambda rest: (drained.append(len(rest)), drain(rest))
    web.sock.sendall(_forward(HELD_TARGET))
    gevent.sleep(0.2)  # not reading: the kernel's buffers fill up
    (response,) = _responses(web, 1)
    assert (response.status, response.reuse) == (200, True)
    assert bytes(response.body) == pattern(HELD_SIZE)
    assert drained  # the rest went out through the greenlet that waits for room
    web.sock.sendall(_forward("/app/info?after"))
    (after,) = _responses(web, 1)
    assert after.page()["queryString"] == "after"
    assert _closed_by_the_web_server(web)


def test_on_a_gevent_socket_a_shutdown_while_the_response_end_waits_for_room_lets_it_finish(node):
    web, _ = _served(node, small_buffers=True)
    web.sock.sendall(_forward(HELD_TARGET))
    gevent.sleep(0.2)  # the end of the response waits for room
    web.sock.sendall(encode_shutdown())
    gevent.sleep(0.2)  # the container reads the Shutdown and closes: after the response
    (response,) = _responses(web, 1)
    assert (response.status, response.reuse) == (200, True)
    assert bytes(response.body) == pattern(HELD_SIZE)
    assert web.message() is None
    web.thread.join(5)
    assert web.thread.dead


def test_on_a_gevent_socket_a_response_ended_while_another_waits_for_room_follows_it(node):
    web, _ = _served(node, small_buffers=True)
    web.sock.sendall(_forward(HELD_TARGET))
    got = 0
    while got < 66_000:  # the first batch of packets, not what is held for the End Response
        data = web.sock.recv(8192)
        web.reader.feed(data)
        got += len(data)
    gevent.sleep(0.2)  # the end of the first response waits for room
    web.sock.sendall(_forward("/app/info?second"))  # served meanwhile; its end is held after it
    gevent.sleep(0.2)
    first, second = _responses(web, 2)
    assert (first.reuse, bytes(first.body)) == (True, pattern(HELD_SIZE))
    assert (second.reuse, second.page()["queryString"]) == (True, "second")
    assert _closed_by_the_web_server(web)
