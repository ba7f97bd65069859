"""mod_wsgi in process: a configuration, a request, a Transport that records the response.

The test application (tests/apps/echo_app.py) runs under wsgiref's validator, so each of
these requests also checks the server's side of PEP 3333.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from modules.mod_wsgi.input import WsgiInput
from pyhttpd.config import Config
from pyhttpd.conftree import ConfigError
from pyhttpd.http_request import process_request
from pyhttpd.log import open_error_logs
from pyhttpd.module import DECLINED
from pyhttpd.request import Connection, Request
from pyhttpd.uri import decode_path
from tests.apps.echo_app import pattern
from tests.peers.page_text import parse_page

ECHO_APP = Path(__file__).resolve().parents[1] / "apps" / "echo_app.py"


class RecordingTransport:
    """A Transport that serves the body `piece` bytes at a time and records the response."""

    def __init__(self, body: bytes = b"", piece: int = 1 << 20) -> None:
        self.body = io.BytesIO(body)
        self.piece = piece
        self.status: int | None = None
        self.status_line: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.out = bytearray()
        self.sendfiles: list[tuple[int, int]] = []

    def read_body(self, size: int) -> bytes:
        return self.body.read(min(size, self.piece))

    def send_headers(self, r: Request) -> None:
        self.status, self.status_line = r.status, r.status_line
        self.headers = [("Content-Type", r.content_type)] if r.content_type else []
        self.headers += r.headers_out.items()

    def write(self, data: bytes) -> None:
        self.out += data

    def sendfile(self, file, offset: int, count: int) -> None:  # noqa: ANN001
        self.sendfiles.append((offset, count))
        self.out += os.pread(file.fileno(), count, offset)

    def flush(self) -> None:
        pass

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def page(self) -> dict[str, str]:
        return parse_page(self.out.decode("utf-8", "surrogateescape"))


class Server:
    """A loaded configuration with mod_wsgi and a way to send it requests."""

    def __init__(self, root: Path, conf: str) -> None:
        self.root = root
        (root / "htdocs").mkdir(exist_ok=True)
        (root / "logs").mkdir(exist_ok=True)
        path = root / "httpd.conf"
        path.write_text(
            f"ServerRoot {root}\nServerName test.example:8080\nErrorLog logs/error_log\n"
            f"LoadModule wsgi_module modules/mod_wsgi\n{conf}\n"
        )
        self.config = Config.load(str(path))
        open_error_logs(self.config.servers)

    def request(
        self,
        target: str,
        method: str = "GET",
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        *,
        chunked: bool = False,
        piece: int = 1 << 20,
        https: bool = False,
        user: str | None = None,
    ) -> tuple[RecordingTransport, Request]:
        transport = RecordingTransport(body, piece)
        connection = Connection("127.0.0.1", 40000, "127.0.0.1", 8080)
        connection.is_ssl = https
        r = Request(self.config, connection, transport)
        path, sep, query = target.partition("?")
        r.method, r.unparsed_uri, r.uri, r.args = method, target, decode_path(path), query if sep else None
        r.the_request = f"{method} {target} HTTP/1.1"
        r.header_only = method == "HEAD"
        r.hostname = "test.example"
        r.headers_in.add("Host", "test.example:8080")
        for name, value in headers:
            r.headers_in.add(name, value)
        if not chunked:
            r.headers_in.set("Content-Length", str(len(body)))
        r.remaining = None if chunked else len(body)
        r.user = user
        process_request(r)
        return transport, r

    def log(self) -> str:
        return (self.root / "logs" / "error_log").read_text()


def script_server(root: Path, returns: str, before_return: str = "") -> Server:
    """A server with WSGIScriptAlias /r to an application that returns `returns`."""
    script = root / "app.py"
    script.write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        f"{before_return}    return {returns}\n"
    )
    return Server(root, f"WSGIScriptAlias /r {script}")


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return Server(tmp_path, f"WSGIScriptAlias /app {ECHO_APP}")


def test_get_reaches_the_application_with_a_conformant_environ(server):
    t, _ = server.request("/app/some%20path?a=1&b=2", headers=(("X-Probe", "yes"), ("Cookie", "flavour=mint")))
    page = t.page()
    assert t.status == 200
    assert page["method"] == "GET"
    assert (page["scriptName"], page["pathInfo"]) == ("/app", "/some path")
    assert page["queryString"] == "a=1&b=2"
    assert page["requestURI"] == "/app/some%20path?a=1&b=2"
    assert page["header.x-probe"] == "yes"
    assert page["cookie.flavour"] == "mint"
    assert (page["serverName"], page["serverPort"]) == ("test.example", "8080")
    assert (page["remoteAddr"], page["remotePort"]) == ("127.0.0.1", "40000")
    assert (page["scheme"], page["multithread"], page["multiprocess"]) == ("http", "True", "True")
    assert "https" not in page


@pytest.mark.parametrize(
    ("target", "script_name", "path_info"),
    [("/app", "/app", ""), ("/app/", "/app", "/"), ("/app/x/y", "/app", "/x/y")],
)
def test_script_name_and_path_info_split_at_the_alias(server, target, script_name, path_info):
    t, r = server.request(target)
    page = t.page()
    assert (page["scriptName"], page["pathInfo"]) == (script_name, path_info)
    assert r.handler == "wsgi-script"


def test_alias_matches_only_at_a_slash_boundary(server):
    t, r = server.request("/apple")
    assert t.status == 404
    assert r.handler != "wsgi-script"


def test_alias_of_the_root_gives_an_empty_script_name(tmp_path):
    server = Server(tmp_path, f"WSGIScriptAlias / {ECHO_APP}")
    page = server.request("/x/y")[0].page()
    assert (page["scriptName"], page["pathInfo"]) == ("", "/x/y")


def test_post_body_streams_through_wsgi_input(server):
    payload = os.urandom(300_000)
    t, _ = server.request("/app/info", "POST", (("Content-Type", "application/octet-stream"),), payload, piece=5000)
    page = t.page()
    assert page["body.bytes"] == str(len(payload))
    assert page["body.sha256"] == hashlib.sha256(payload).hexdigest()
    assert (page["contentType"], page["contentLength"]) == ("application/octet-stream", str(len(payload)))
    assert "header.content-type" not in page


def test_chunked_body_without_content_length_streams_to_the_end(server):
    payload = b"chunk" * 20_000
    t, _ = server.request("/app/info", "POST", body=payload, chunked=True, piece=777)
    page = t.page()
    assert "contentLength" not in page
    assert page["body.sha256"] == hashlib.sha256(payload).hexdigest()


def test_input_readline_iteration_readlines_and_reads_past_the_end(server):
    body = b"alpha\nbravo-long\ncharlie\ndelta\n" + b"x\n" * 100 + b"last-without-newline"
    page = server.request("/app/lines", "POST", body=body, chunked=True, piece=3)[0].page()
    assert page["first"] == "alpha"
    assert page["second"] == "bravo-long"
    assert page["middle"] == "charlie|delta"
    assert (page["tail"], page["tail.bytes"]) == ("101", str(200 + len("last-without-newline")))
    assert page["end"] == "[b'', b'']"


def test_wsgi_input_read_with_a_size_fills_it_unless_the_body_ends():
    source = io.BytesIO(b"0123456789" * 3)
    stream = WsgiInput(lambda n: source.read(min(n, 4)))
    assert stream.read(25) == (b"0123456789" * 3)[:25]
    assert stream.read(25) == b"56789"
    assert stream.read(1) == b""
    assert stream.read() == b""


def test_single_item_list_response_gets_a_content_length(tmp_path):
    server = script_server(tmp_path, "[b'hello']")
    t, _ = server.request("/r")
    assert (t.header("Content-Length"), bytes(t.out)) == (["5"], b"hello")


def test_headers_go_out_as_the_application_gave_them(server):
    t, _ = server.request("/app/headers")
    assert t.header("X-Pyhttpd-Multi") == ["one", "two"]
    assert t.header("Set-Cookie") == ["alpha=1; Path=/", "beta=2; HttpOnly"]
    assert t.header("Content-Type") == ["text/plain; charset=utf-8"]


def test_status_line_keeps_the_applications_reason(server):
    t, _ = server.request("/app/status?code=418")
    assert (t.status, t.status_line) == (418, "418 Custom Reason")


def test_streamed_response_has_no_content_length_and_arrives_whole(server):
    t, _ = server.request("/app/big?bytes=300000")
    assert t.header("Content-Length") == []
    assert bytes(t.out) == pattern(300_000)


def test_write_callable_output_comes_before_the_iterable(server):
    t, _ = server.request("/app/write")
    assert bytes(t.out) == b"written returned\n"


def test_iterable_close_is_called(server, tmp_path):
    marker = tmp_path / "closed"
    t, _ = server.request(f"/app/close?marker={marker}")
    assert bytes(t.out) == b"one two"
    assert marker.read_text() == "closed"


def test_file_wrapper_of_a_real_file_is_sent_with_sendfile(server, tmp_path):
    data = pattern(50_000)
    (tmp_path / "data.bin").write_bytes(data)
    t, _ = server.request(f"/app/file?path={tmp_path / 'data.bin'}&offset=1000")
    assert t.sendfiles == [(1000, 49_000)]
    assert t.header("Content-Length") == ["49000"]
    assert bytes(t.out) == data[1000:]


def test_file_wrapper_without_a_descriptor_is_iterated(server):
    t, _ = server.request("/app/bytesio")
    assert t.sendfiles == []
    assert bytes(t.out) == pattern(100_000)


def test_exc_info_before_the_body_replaces_the_status(server):
    t, _ = server.request("/app/exc-info")
    assert t.status == 503
    assert bytes(t.out) == b"recovered\n"


def test_exc_info_after_the_body_began_reraises_and_aborts_the_connection(server):
    t, r = server.request("/app/exc-info-late")
    assert (t.status, bytes(t.out)) == (200, b"begun ")
    assert r.connection.aborted
    assert "too late to recover" in server.log()


def test_application_that_raises_gets_500_and_its_traceback_logged(server):
    t, r = server.request("/app/raise")
    assert t.status == 500
    log = server.log()
    assert f"[wsgi:error] [pid {os.getpid()}] [client 127.0.0.1:40000] Exception occurred processing WSGI script '{ECHO_APP}'" in log
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: the test application fails on purpose" in log
    t, _ = server.request("/app/info")
    assert t.status == 200


def test_application_that_raises_after_the_headers_truncates_the_response(server):
    t, r = server.request("/app/raise-late")
    assert (t.status, bytes(t.out)) == (200, b"partial ")
    assert r.connection.aborted and not r.keepalive


def test_hop_by_hop_header_is_refused_with_500(server):
    t, _ = server.request("/app/hop")
    assert t.status == 500
    assert "hop-by-hop header 'Connection' is not allowed" in server.log()


def test_a_header_list_an_application_changes_between_requests_is_checked_again(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(
        "HEADERS = [('Content-Type', 'text/plain'), ('X-Seen', '1')]\n"
        "def application(environ, start_response):\n"
        "    if environ['QUERY_STRING'] == 'break':\n"
        "        HEADERS.append(('Bad Name', 'x'))\n"
        "    start_response('200 OK', HEADERS)\n"
        "    return [b'ok']\n"
    )
    server = Server(tmp_path, f"WSGIScriptAlias /r {script}")
    for _ in range(2):
        t, _ = server.request("/r")
        assert (t.status, t.header("X-Seen"), bytes(t.out)) == (200, ["1"], b"ok")
    t, _ = server.request("/r?break")
    assert t.status == 500
    assert "invalid header name 'Bad Name'" in server.log()
    assert server.request("/r")[0].status == 500  # still the same, now invalid, list


def test_content_length_is_honoured_when_the_application_sends_more(server):
    t, r = server.request("/app/length?declared=3")
    assert bytes(t.out) == b"123"
    assert not r.connection.aborted
    assert "longer than its Content-Length 3" in server.log()


def test_short_body_for_its_content_length_closes_the_connection(server):
    t, r = server.request("/app/length?declared=10")
    assert bytes(t.out) == b"12345"
    assert r.connection.aborted and not r.keepalive


def test_head_sends_headers_only(server):
    t, _ = server.request("/app/headers", "HEAD")
    assert t.status == 200
    assert bytes(t.out) == b""


def test_https_connection_sets_https_and_the_url_scheme(server):
    page = server.request("/app/info", https=True)[0].page()
    assert (page["scheme"], page["https"]) == ("https", "on")


def test_remote_user_and_auth_type_reach_the_environ(server):
    page = server.request("/app/info", user="alice")[0].page()
    assert page["remoteUser"] == "alice"


def test_repeated_headers_join_and_cookies_join_with_semicolons(server):
    headers = (("X-Multi", "a"), ("X-Multi", "b"), ("Cookie", "a=1"), ("Cookie", "b=2"))
    page = server.request("/app/info", headers=headers)[0].page()
    assert page["header.x-multi"] == "a, b"
    assert (page["cookie.a"], page["cookie.b"]) == ("1", "2")


def test_headers_with_underscores_and_proxy_are_not_passed(server):
    headers = (("X_Spoof", "1"), ("Proxy", "http://evil"), ("Authorization", "Basic eDp5"))
    page = server.request("/app/info", headers=headers)[0].page()
    assert not any(key.startswith(("header.x-spoof", "header.proxy", "header.authorization")) for key in page)


def test_authorization_is_passed_with_wsgi_pass_authorization_on(tmp_path):
    server = Server(tmp_path, f"WSGIScriptAlias /app {ECHO_APP}\nWSGIPassAuthorization On")
    page = server.request("/app/info", headers=(("Authorization", "Basic eDp5"),))[0].page()
    assert page["header.authorization"] == "Basic eDp5"


def test_wsgi_errors_lines_go_to_the_error_log(server):
    server.request("/app/errors")
    log = server.log()
    assert "[wsgi:error]" in log
    assert "first line from the application\n" in log
    assert "second line\n" in log


def _write_app(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        f"    return [{text!r}.encode()]\n"
        "def other(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'other']\n"
    )
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.mark.parametrize(("reloading", "expected"), [("On", b"second"), ("Off", b"first")])
def test_script_reloading_loads_a_changed_script_only_when_on(tmp_path, reloading, expected):
    script = tmp_path / "app.py"
    _write_app(script, "first", 1_000_000_000_000_000_000)
    server = Server(tmp_path, f"WSGIScriptAlias /r {script}\nWSGIScriptReloading {reloading}")
    assert bytes(server.request("/r")[0].out) == b"first"
    _write_app(script, "second", 1_000_000_005_000_000_000)
    assert bytes(server.request("/r")[0].out) == expected


def test_callable_object_names_another_callable(tmp_path):
    script = tmp_path / "app.py"
    _write_app(script, "first", 1_000_000_000_000_000_000)
    server = Server(tmp_path, f"WSGIScriptAlias /r {script}\n<Location /r>\nWSGICallableObject other\n</Location>")
    assert bytes(server.request("/r")[0].out) == b"other"
    server = Server(tmp_path, f"WSGIScriptAlias /r {script} callable-object=other")
    assert bytes(server.request("/r")[0].out) == b"other"


def test_script_without_the_callable_gets_500_and_says_so(tmp_path):
    script = tmp_path / "app.py"
    script.write_text("x = 1\n")
    server = Server(tmp_path, f"WSGIScriptAlias /r {script}")
    assert server.request("/r")[0].status == 500
    assert f"Target WSGI script '{script}' does not contain WSGI application 'application'" in server.log()


def test_script_that_fails_to_load_gets_500_with_its_traceback(tmp_path):
    script = tmp_path / "app.py"
    script.write_text("import no_such_module_here\n")
    server = Server(tmp_path, f"WSGIScriptAlias /r {script}")
    assert server.request("/r")[0].status == 500
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in server.log()


def test_script_alias_to_a_missing_file_is_a_config_error_naming_file_and_line(tmp_path):
    with pytest.raises(ConfigError) as e:
        Server(tmp_path, f"WSGIScriptAlias /r {tmp_path}/missing.py")
    assert str(e.value).startswith(f"{tmp_path}/httpd.conf:5: WSGIScriptAlias: cannot read WSGI script")


def test_script_alias_option_other_than_callable_object_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unsupported option 'process-group=x'"):
        Server(tmp_path, f"WSGIScriptAlias /r {ECHO_APP} process-group=x")


def test_set_handler_wsgi_script_serves_the_mapped_file(tmp_path):
    server = Server(tmp_path, "<Location /scripts>\nSetHandler wsgi-script\n</Location>")
    (tmp_path / "htdocs" / "scripts").mkdir()
    _write_app(tmp_path / "htdocs" / "scripts" / "hello.py", "hello", 1_000_000_000_000_000_000)
    t, _ = server.request("/scripts/hello.py")
    assert (t.status, bytes(t.out)) == (200, b"hello")


def test_other_modules_add_environ_entries_through_request_notes(tmp_path):
    server = script_server(
        tmp_path, "[f\"{environ['pyhttpd.session']} {r.uri}\".encode()]", "    r = environ['pyhttpd.request']\n"
    )

    def add_session(r: Request) -> int:
        r.notes["wsgi_environ"] = {"pyhttpd.session": "the-session"}
        return DECLINED

    server.config.hooks.register("fixups", add_session)
    t, _ = server.request("/r/x")
    assert bytes(t.out) == b"the-session /r/x"


def test_empty_response_gets_content_length_zero(tmp_path):
    server = script_server(tmp_path, "iter(())")
    t, _ = server.request("/r")
    assert (t.status, t.header("Content-Length"), bytes(t.out)) == (200, ["0"], b"")
