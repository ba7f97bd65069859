"""HttpConnection over a socket pair, with test handlers registered on the config's hooks."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyhttpd import child, http_protocol
from pyhttpd.config import Config
from pyhttpd.conftree import ConfigError
from pyhttpd.http_protocol import HttpConnection
from pyhttpd.module import DECLINED, OK, REALLY_FIRST
from pyhttpd.request import Request

# -- a client-side reading of raw responses ----------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_head: str = ""
    header_list: list[tuple[str, str]] = field(default_factory=list)


def parse_responses(raw: bytes, head_only: bool = False, eof: bool = True) -> tuple[list[Response], bytes]:
    """Split raw bytes into responses (framed by Content-Length, chunked or close); returns
    the complete responses and the bytes after them (an incomplete response, if any)."""
    responses = []
    while raw:
        start = raw
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            break
        head = raw[:end].decode("latin-1")
        raw = raw[end + 4 :]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        pairs = [tuple(line.split(": ", 1)) for line in lines[1:]]
        headers = {k.lower(): v for k, v in pairs}
        if head_only or status in (100, 204, 304):
            body = b""
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if len(raw) < n:
                return responses, start
            body, raw = raw[:n], raw[n:]
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                line_end = raw.find(b"\r\n")
                if line_end < 0:
                    return responses, start
                size = int(raw[:line_end], 16)
                if len(raw) < line_end + 2 + size + 2:
                    return responses, start
                raw = raw[line_end + 2 :]
                if size == 0:
                    raw = raw[2:]
                    break
                body += raw[:size]
                raw = raw[size + 2 :]
        elif eof:
            body, raw = raw, b""
        else:
            return responses, start
        responses.append(Response(status, headers, body, head, pairs))
    return responses, raw


# -- the server side ----------------------------------------------------------------------


def _handler(r: Request) -> int:
    uri = r.uri
    if uri == "/info":
        body = f"{r.method} {r.uri} {r.args} {r.hostname} {r.protocol} {r.unparsed_uri}".encode()
    elif uri == "/echo":
        body = r.read()
    elif uri == "/headers":
        body = "\n".join(f"{k}: {v}" for k, v in r.headers_in).encode()
    elif uri == "/stream":
        pieces, size = (int(x) for x in (r.args or "3,10").split(","))
        for i in range(pieces):
            r.write(bytes([65 + i % 26]) * size)
            r.flush()
        return OK
    elif uri == "/nocontent":
        r.status = 204
        return OK
    elif uri == "/short":
        r.headers_out.set("Content-Length", "10")
        r.write(b"12345")
        return OK
    elif uri == "/split":
        r.headers_out.set("X-Evil", "a\r\nSet-Cookie: stolen=1")
        body = b"ok"
    elif uri == "/boom":
        raise RuntimeError("handler failed on purpose")
    elif uri == "/boom-late":
        r.content_type = "text/plain"
        r.write(b"partial body")
        raise RuntimeError("handler failed after writing")
    elif uri == "/file":
        path = r.config.test_file  # type: ignore[attr-defined]
        size = Path(path).stat().st_size
        if r.args != "chunked":
            r.headers_out.set("Content-Length", str(size))
        with open(path, "rb") as f:
            r.sendfile(f, 0, size)
        return OK
    elif uri == "/length":
        body = b"hello world\n"
        r.headers_out.set("Content-Length", str(len(body)))
    elif uri == "/slowread":
        time.sleep(float(r.args or "0"))
        body = r.read()
    else:
        return DECLINED
    r.content_type = "text/plain"
    r.write(body)
    return OK


class Harness:
    """A config with the test handlers, and connections served in threads."""

    def __init__(self, root: Path, conf: str = "") -> None:
        (root / "htdocs").mkdir(exist_ok=True)
        conf_path = root / "httpd.conf"
        conf_path.write_text(f"ServerRoot {root}\nDocumentRoot htdocs\nServerName test.example\n{conf}\n")
        self.config = Config.load(str(conf_path))
        self.config.hooks.register("translate_name", lambda r: OK, REALLY_FIRST)
        self.config.hooks.register("handler", _handler, REALLY_FIRST)
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def connect(self, slot=None, tcp: bool = False) -> socket.socket:
        if tcp:
            listener = socket.create_server(("127.0.0.1", 0))
            client = socket.create_connection(listener.getsockname())
            server, addr = listener.accept()
            listener.close()
        else:
            server, client = socket.socketpair()
            addr = ("127.0.0.1", 40000)

        def run() -> None:
            try:
                HttpConnection(self.config, server, addr, None, slot).serve()
            except BaseException as e:  # serve() must never raise
                self.errors.append(e)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        client.settimeout(10)
        return client

    def exchange(self, data: bytes, head_only: bool = False, **kw) -> list[Response]:
        """Send `data`, read until the server closes; the parsed responses."""
        client = self.connect(**kw)
        client.sendall(data)
        raw = read_all(client)
        client.close()
        self.join()
        responses, rest = parse_responses(raw, head_only)
        assert rest == b""
        return responses

    def join(self) -> None:
        for t in self.threads:
            t.join(10)
            assert not t.is_alive(), "the connection was not finished"
        assert not self.errors


def read_all(client: socket.socket) -> bytes:
    chunks = []
    while True:
        data = client.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def read_responses(client: socket.socket, count: int, head_only: bool = False) -> list[Response]:
    raw = b""
    while True:
        responses, rest = parse_responses(raw, head_only, eof=False)
        if len(responses) >= count and not rest:
            return responses
        data = client.recv(65536)
        assert data, f"connection closed after {len(responses)} responses"
        raw += data


@pytest.fixture
def harness(tmp_path):
    made = []

    def make(conf: str = "") -> Harness:
        h = Harness(tmp_path, conf)
        made.append(h)
        return h

    yield make
    for h in made:
        h.join()


GET = b"GET /info HTTP/1.1\r\nHost: test.example\r\n\r\n"

# -- requests and responses ---------------------------------------------------------------


def test_get_is_answered_with_date_server_length_and_type(harness):
    (resp,) = harness().exchange(GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert resp.status == 200
    assert resp.body == b"GET /info None test.example HTTP/1.1 /info"
    assert resp.headers["content-length"] == str(len(resp.body))
    assert resp.headers["content-type"] == "text/plain"
    assert resp.headers["server"].startswith("pyhttpd/")
    assert resp.headers["date"].endswith(" GMT")
    assert resp.headers["connection"] == "close"
    assert resp.raw_head.startswith("HTTP/1.1 200 OK\r\nDate: ")


def test_keep_alive_serves_several_requests_on_one_connection(harness):
    client = harness().connect()
    for _ in range(3):
        client.sendall(GET)
        (resp,) = read_responses(client, 1)
        assert resp.status == 200
        assert "connection" not in resp.headers  # HTTP/1.1 persists without saying so
    client.close()


def test_pipelined_requests_are_answered_in_order(harness):
    requests = b"".join(
        f"GET /info?n={i} HTTP/1.1\r\nHost: test.example\r\n\r\n".encode() for i in range(5)
    )
    client = harness().connect()
    client.sendall(requests)
    responses = read_responses(client, 5)
    assert [r.body.split()[2] for r in responses] == [f"n={i}".encode() for i in range(5)]
    client.close()


def test_pipelined_bodies_stay_with_their_requests(harness):
    data = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthird"
    )
    responses = harness().exchange(data)
    assert [r.body for r in responses] == [b"first", b"second", b"third"]


def test_http10_request_is_answered_and_closed(harness):
    (resp,) = harness().exchange(b"GET /info HTTP/1.0\r\n\r\n")
    assert resp.status == 200
    assert resp.body.endswith(b"HTTP/1.0 /info")
    assert resp.headers["connection"] == "close"
    assert resp.raw_head.startswith("HTTP/1.1 200 OK")


def test_http10_keep_alive_gets_keep_alive_headers(harness):
    client = harness().connect()
    client.sendall(b"GET /info HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    (resp,) = read_responses(client, 1)
    assert resp.headers["connection"] == "Keep-Alive"
    assert resp.headers["keep-alive"] == "timeout=5, max=100"
    client.close()


def test_http10_response_without_length_is_delimited_by_close(harness):
    (resp,) = harness().exchange(b"GET /stream?2,20000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert "content-length" not in resp.headers
    assert "transfer-encoding" not in resp.headers
    assert resp.headers["connection"] == "close"
    assert resp.body == b"A" * 20000 + b"B" * 20000


def test_streamed_response_without_length_is_chunked_for_http11(harness):
    client = harness().connect()
    client.sendall(b"GET /stream?3,7000 HTTP/1.1\r\nHost: x\r\n\r\n")
    (resp,) = read_responses(client, 1)
    assert resp.headers["transfer-encoding"] == "chunked"
    assert resp.body == b"A" * 7000 + b"B" * 7000 + b"C" * 7000
    client.sendall(GET)  # the connection is still usable
    assert read_responses(client, 1)[0].status == 200
    client.close()


def test_small_response_without_length_gets_content_length(harness):
    (resp,) = harness().exchange(b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert "transfer-encoding" not in resp.headers
    assert resp.headers["content-length"] == str(len(b"Host: x\nConnection: close"))


def test_status_line_headers_and_small_body_leave_in_one_write(harness, monkeypatch):
    sends = []
    real = socket.socket.sendall

    def counting(self, data, *args):
        sends.append(bytes(data))
        return real(self, data, *args)

    monkeypatch.setattr(socket.socket, "sendall", counting)
    harness().exchange(GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    server_sends = [s for s in sends if s.startswith(b"HTTP/1.1")]
    assert len(server_sends) == 1
    assert server_sends[0].endswith(b"GET /info None test.example HTTP/1.1 /info")


def test_head_sends_headers_without_body(harness):
    client = harness().connect()
    client.sendall(
        b"HEAD /length HTTP/1.1\r\nHost: x\r\n\r\n" + GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    )
    raw = read_all(client)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 12\r\n" in head
    (get,), _ = parse_responses(rest)  # the next response follows at once: no body was sent
    assert get.body.startswith(b"GET /info")
    client.close()


def test_no_content_response_has_no_body_and_no_length(harness):
    (resp,) = harness().exchange(b"GET /nocontent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert resp.status == 204
    assert "content-length" not in resp.headers
    assert "transfer-encoding" not in resp.headers


def test_connection_close_request_closes_after_the_response(harness):
    responses = harness().exchange(GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + GET)
    assert len(responses) == 1
    assert responses[0].headers["connection"] == "close"


def test_chunked_request_body_is_read(harness):
    data = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    )
    (resp,) = harness().exchange(data)
    assert resp.body == b"hello world"


def test_request_body_streams_without_being_read_whole(harness):
    seen = []

    def handler(r: Request) -> int:
        if r.uri != "/sizes":
            return DECLINED
        while chunk := r.read(4096):
            seen.append(len(chunk))
        r.write(str(sum(seen)).encode())
        return OK

    h = harness()
    h.config.hooks.register("handler", handler, REALLY_FIRST)
    body = b"x" * 300000
    client = h.connect()
    client.sendall(b"POST /sizes HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
    client.sendall(body)
    (resp,) = read_responses(client, 1)
    assert resp.body == b"300000"
    assert max(seen) <= 4096
    client.close()


def test_expect_100_continue_is_answered_on_the_first_body_read(harness):
    client = harness().connect()
    client.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    interim = client.recv(100)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.sendall(b"data")
    (resp,) = read_responses(client, 1)
    assert resp.body == b"data"
    client.close()


def test_expect_100_continue_without_a_body_read_sends_no_100_and_closes(harness):
    client = harness().connect()
    client.sendall(
        b"POST /info HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    raw = read_all(client)
    (resp,), _ = parse_responses(raw)
    assert resp.status == 200
    assert b"100 Continue" not in raw
    client.close()


def test_unknown_expectation_is_417(harness):
    (resp,) = harness().exchange(b"GET /info HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n")
    assert resp.status == 417


def test_absolute_form_target_names_the_host(harness):
    (resp,) = harness().exchange(
        b"GET http://Other.Example:8080/info?q HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n"
    )
    assert resp.body == b"GET /info q other.example HTTP/1.1 http://Other.Example:8080/info?q"


def test_uri_is_decoded_and_normalised(harness):
    (resp,) = harness().exchange(
        b"GET /a/../%69nfo?x=%20 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert resp.body.startswith(b"GET /info x=%20 x ")


def test_unread_body_is_discarded_before_the_next_request(harness):
    client = harness().connect()
    client.sendall(b"POST /info HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789" + GET)
    first, second = read_responses(client, 2)
    assert first.status == second.status == 200
    assert second.body.startswith(b"GET /info")
    client.close()


def test_handler_failure_is_500_and_the_connection_closes(harness):
    h = harness()
    (resp,) = h.exchange(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n" + GET)
    assert resp.status == 500
    assert resp.headers["connection"] == "close"


def test_header_value_cannot_split_the_response(harness):
    (resp,) = harness().exchange(b"GET /split HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert "set-cookie" not in resp.headers
    assert resp.headers["x-evil"] == "a  Set-Cookie: stolen=1"


def test_response_shorter_than_its_content_length_closes_the_connection(harness):
    client = harness().connect()
    client.sendall(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = read_all(client)
    assert raw.endswith(b"\r\n\r\n12345")
    client.close()


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("size", [100, 100_000, 3_000_000])
def test_files_are_sent_whole(harness, tmp_path, size, chunked):
    h = harness()
    path = tmp_path / "file.bin"
    content = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path.write_bytes(content)
    h.config.test_file = str(path)
    client = h.connect(tcp=True)
    target = b"/file?chunked" if chunked else b"/file"
    client.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    (resp,) = read_responses(client, 1)
    assert resp.body == content
    # without a Content-Length, a file small enough to go out with the head gets one
    assert ("transfer-encoding" in resp.headers) == (chunked and size > http_protocol.OUTPUT_BUFFER)
    client.close()


def test_upgrade_request_is_served_as_a_plain_request_with_its_body(harness):
    data = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
        b"Content-Length: 5\r\n\r\nhello" + GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    )
    first, second = harness().exchange(data)
    assert first.body == b"hello"
    assert second.body.startswith(b"GET /info")


# -- refusals ---------------------------------------------------------------------------


def refused(harness_or_h, data: bytes, status: int) -> Response:
    """Send `data` then a well-formed request; only the refusal comes back, and the
    connection is closed."""
    h = harness_or_h() if callable(harness_or_h) else harness_or_h
    responses = h.exchange(data + GET)
    assert [r.status for r in responses] == [status]
    assert responses[0].headers["connection"] == "close"
    return responses[0]


def test_request_line_longer_than_limit_request_line_is_414(harness):
    h = harness("LimitRequestLine 100")
    path = b"/info?" + b"a" * (100 - len(b"GET /info? HTTP/1.1"))
    ok = h.exchange(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok[0].status == 200
    refused(h, b"GET " + path + b"a HTTP/1.1\r\nHost: x\r\n\r\n", 414)


def test_request_line_that_never_ends_is_414_without_waiting_for_it(harness):
    client = harness("LimitRequestLine 1000").connect()
    client.sendall(b"GET /" + b"a" * 5000)
    (resp,), _ = parse_responses(read_all(client))
    assert resp.status == 414
    client.close()


def test_header_field_larger_than_limit_is_400(harness):
    h = harness("LimitRequestFieldSize 200")
    ok = h.exchange(b"GET /info HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 195 + b"\r\nConnection: close\r\n\r\n")
    assert ok[0].status == 200
    refused(h, b"GET /info HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 196 + b"\r\n\r\n", 400)


def test_header_field_that_never_ends_is_400_without_waiting_for_it(harness):
    client = harness("LimitRequestFieldSize 1000").connect()
    client.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 200_000)
    (resp,), _ = parse_responses(read_all(client))
    assert resp.status == 400
    client.close()


def test_more_fields_than_limit_request_fields_is_400(harness):
    h = harness("LimitRequestFields 5")
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(4))
    ok = h.exchange(b"GET /info HTTP/1.1\r\nHost: x\r\n" + fields + b"Connection: close\r\n\r\n")
    assert ok[0].status == 400  # Host + 4 + Connection = 6 fields
    ok = h.exchange(b"GET /info HTTP/1.1\r\nHost: x\r\n" + fields[:-8] + b"Connection: close\r\n\r\n")
    assert ok[0].status == 200
    refused(h, b"GET /info HTTP/1.1\r\nHost: x\r\n" + fields * 2 + b"\r\n", 400)


def test_chunked_trailers_count_against_the_field_limit(harness):
    trailers = b"".join(b"T-%d: v\r\n" % i for i in range(10))
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n" + trailers + b"\r\n"
    (resp,) = harness("LimitRequestFields 5").exchange(data + GET)
    assert resp.status == 400


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="cl-and-te"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", id="te-and-cl"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", id="two-cl"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", id="same-cl-twice"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", id="cl-list"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", id="cl-sign"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", id="te-chunked-identity"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", id="te-identity"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", id="te-gzip-chunked"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="te-twice"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", id="te-space-before-colon"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", id="te-vertical-tab"),
        pytest.param(b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="te-in-http10"),
        pytest.param(b"GET /info HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", id="obs-fold"),
        pytest.param(b"GET /info HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", id="nul-in-value"),
        pytest.param(b"GET /info HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", id="cr-in-value"),
        pytest.param(b"GET /info HTTP/1.1\nHost: x\n\n", id="bare-lf"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", id="bad-chunk-size"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", id="negative-chunk-size"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", id="chunk-size-overflow"),
        pytest.param(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", id="chunk-longer-than-size"),
        pytest.param(b"GET /info HTTP/1.1\r\n\r\n", id="no-host"),
        pytest.param(b"GET /info HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", id="two-hosts"),
        pytest.param(b"GET /info HTTP/1.1\r\nHost: a/b\r\n\r\n", id="bad-host"),
        pytest.param(b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", id="space-in-target"),
        pytest.param(b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", id="traversal"),
        pytest.param(b"GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", id="encoded-traversal"),
        pytest.param(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", id="asterisk-not-options"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", id="tls-hello"),
        pytest.param(b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", id="extra-on-request-line"),
    ],
)
def test_malformed_and_smuggling_requests_are_400_and_closed(harness, data):
    refused(harness, data, 400)


def test_smuggled_request_after_conflicting_lengths_is_never_served(harness):
    smuggled = b"GET /info?smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    data = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        % (len(smuggled) + 5) + smuggled
    )
    responses = harness().exchange(data)
    assert [r.status for r in responses] == [400]
    assert all(b"smuggled" not in r.body for r in responses)


def test_encoded_slash_and_nul_are_404(harness):
    refused(harness, b"GET /a%2fb HTTP/1.1\r\nHost: x\r\n\r\n", 404)
    refused(harness, b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 404)


def test_unknown_method_is_501(harness):
    refused(harness, b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 501)


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/1.2"])
def test_unsupported_version_is_505(harness, version):
    refused(harness, b"GET /info " + version + b"\r\nHost: x\r\n\r\n", 505)


def test_refusal_is_logged_by_log_transaction(harness):
    h = harness()
    logged = []
    h.config.hooks.register("log_transaction", lambda r: logged.append((r.status, r.the_request)) or OK)
    refused(h, b"GET /a%2fb HTTP/1.1\r\nHost: x\r\n\r\n", 404)
    assert logged == [(404, "GET /a%2fb HTTP/1.1")]


def test_limit_request_body_is_413(harness):
    h = harness("LimitRequestBody 10")
    refused(h, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n" + b"x" * 11, 413)
    chunked = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n" + b"x" * 11 + b"\r\n0\r\n\r\n"
    refused(h, chunked, 413)
    ok = h.exchange(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n" + b"x" * 10)
    assert ok[0].body == b"x" * 10


# -- keep-alive limits and timeouts -------------------------------------------------------


def test_max_keep_alive_requests_closes_after_the_limit(harness):
    client = harness("MaxKeepAliveRequests 2").connect()
    ka = GET.replace(b"\r\n\r\n", b"\r\nConnection: keep-alive\r\n\r\n")
    client.sendall(ka * 4)
    raw = read_all(client)
    responses, _ = parse_responses(raw)
    # httpd's count: "max=N" requests left after this one, then Connection: close
    assert [r.headers.get("keep-alive") for r in responses] == ["timeout=5, max=2", "timeout=5, max=1", None]
    assert responses[-1].headers["connection"] == "close"
    client.close()


def test_keep_alive_off_closes_after_each_response(harness):
    responses = harness("KeepAlive Off").exchange(GET * 2)
    assert len(responses) == 1
    assert responses[0].headers["connection"] == "close"


def test_idle_connection_closes_after_keep_alive_timeout(harness):
    client = harness("KeepAliveTimeout 0.3").connect()
    client.sendall(GET)
    read_responses(client, 1)
    started = time.monotonic()
    assert client.recv(100) == b""  # closed without a response
    assert 0.2 < time.monotonic() - started < 3
    client.close()


def test_slowloris_headers_get_408_at_request_read_timeout(harness):
    client = harness("RequestReadTimeout header=1").connect()
    started = time.monotonic()
    client.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\n")
    for _ in range(4):
        time.sleep(0.1)
        client.sendall(b"X-a: b\r\n")
    (resp,), _ = parse_responses(read_all(client))
    assert resp.status == 408
    assert 0.9 < time.monotonic() - started < 3
    client.close()


def test_header_timeout_grows_with_min_rate_up_to_its_maximum(harness):
    client = harness("RequestReadTimeout header=1-2,MinRate=100").connect()
    started = time.monotonic()
    client.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\n")
    answer = b""
    while not answer and time.monotonic() - started < 5:
        # 100 bytes every 0.2 s earn a second each: only the 2 s maximum stops them
        client.sendall(b"X-a: " + b"b" * 93 + b"\r\n")
        time.sleep(0.2)
        try:
            answer = client.recv(100, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 1.8 < time.monotonic() - started < 3
    client.close()


def test_silent_new_connection_gets_408(harness):
    client = harness("RequestReadTimeout header=0.5").connect()
    (resp,), _ = parse_responses(read_all(client))
    assert resp.status == 408


def test_slow_body_gets_408(harness):
    client = harness("RequestReadTimeout body=0.5").connect()
    client.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    (resp,), _ = parse_responses(read_all(client))
    assert resp.status == 408
    client.close()


def test_graceful_stop_closes_after_the_current_response(harness, monkeypatch):
    monkeypatch.setattr(child, "_graceful_stop", True)
    responses = harness().exchange(GET * 2)
    assert len(responses) == 1
    assert responses[0].headers["connection"] == "close"


# -- containment and the scoreboard -------------------------------------------------------


def test_failing_hook_does_not_escape_the_connection(harness):
    h = harness()

    def failing(r):
        raise RuntimeError("log_transaction failed")

    h.config.hooks.register("log_transaction", failing)
    client = h.connect()
    client.sendall(GET)
    read_all(client)  # serve() contained the failure and closed
    client.close()
    h.join()


class RecordingSlot:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def set_status(self, letter: str) -> None:
        self.calls.append(("status", letter))

    def start_request(self, client, vhost, request_line, protocol="") -> None:
        self.calls.append(("start", client, vhost, request_line, protocol))

    def end_request(self, bytes_sent: int) -> None:
        self.calls.append(("end", bytes_sent))


def test_scoreboard_slot_follows_the_connection(harness):
    slot = RecordingSlot()
    harness().exchange(GET + GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"), slot=slot)
    body_len = len(b"GET /info None test.example HTTP/1.1 /info")
    assert slot.calls == [
        ("status", "R"),
        ("start", "127.0.0.1", "test.example:0", "GET /info HTTP/1.1", "HTTP/1.1"),
        ("end", body_len),
        ("status", "K"),
        ("start", "127.0.0.1", "test.example:0", "GET /info HTTP/1.1", "HTTP/1.1"),
        ("end", body_len),
        ("status", "_"),
    ]


def test_a_complete_response_is_sent_before_log_transaction_runs(harness):
    h = harness()
    client = h.connect()
    seen = []
    peeked = threading.Event()

    def logger(r):
        client.settimeout(0.5)
        try:
            seen.append(client.recv(65536, socket.MSG_PEEK))
        except TimeoutError:
            seen.append(b"")
        peeked.set()
        return OK

    h.config.hooks.register("log_transaction", logger)
    client.sendall(b"GET /length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert peeked.wait(10)
    client.settimeout(10)
    read_all(client)
    client.close()
    h.join()
    assert seen[0].endswith(b"\r\n\r\nhello world\n")


# -- RequestReadTimeout ----------------------------------------------------------------------


def test_request_read_timeout_defaults_are_mod_reqtimeout_s(harness):
    core = harness().config.main_server.core
    assert (core.header_read_timeout.timeout, core.header_read_timeout.max_timeout, core.header_read_timeout.min_rate) == (20, 40, 500)
    assert (core.body_read_timeout.timeout, core.body_read_timeout.max_timeout, core.body_read_timeout.min_rate) == (20, 0, 500)


def test_request_read_timeout_stages_are_set_separately(harness):
    core = harness("RequestReadTimeout header=5-10,MinRate=100 handshake=5").config.main_server.core
    assert (core.header_read_timeout.timeout, core.header_read_timeout.max_timeout, core.header_read_timeout.min_rate) == (5, 10, 100)
    assert core.body_read_timeout.timeout == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("header", "expected handshake=, header= or body="),
        ("trailer=5", "expected handshake=, header= or body="),
        ("header=abc", "is not a timeout"),
        ("header=10-5,MinRate=500", "the maximum must exceed the timeout"),
        ("header=10-20", "needs a MinRate"),
        ("body=10,Rate=5", "is not MinRate=bytes-per-second"),
    ],
)
def test_bad_request_read_timeout_names_file_and_line(tmp_path, args, message):
    conf = tmp_path / "httpd.conf"
    (tmp_path / "htdocs").mkdir()
    conf.write_text(f"ServerRoot {tmp_path}\nDocumentRoot htdocs\nRequestReadTimeout {args}\n")
    with pytest.raises(ConfigError) as e:
        Config.load(str(conf))
    assert "httpd.conf:3: RequestReadTimeout: " in str(e.value)
    assert message in str(e.value)


def test_handler_failing_mid_response_sends_what_it_wrote_unterminated_and_closes(harness):
    h = harness()
    client = h.connect()
    client.sendall(b"GET /boom-late HTTP/1.1\r\nHost: test.example\r\n\r\n" + GET)
    raw = read_all(client)
    client.close()
    h.join()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" in head and b"Transfer-Encoding: chunked" in head
    assert body == b"c\r\npartial body\r\n"  # no last chunk: the client knows it is truncated
