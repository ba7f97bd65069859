"""mod_wsgi in a real pyhttpd over HTTP: concurrency inside one child, failures, streaming."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time

from tests.apps.echo_app import pattern
from tests.peers.page_text import parse_page
from tests.unit.test_ajp_connection import ECHO_APP

CONF = f"""
LoadModule wsgi_module modules/mod_wsgi
WSGIScriptAlias /app {ECHO_APP}
"""


def fetch(port: int, target: str, method: str = "GET", body=None, headers=None):  # noqa: ANN001, ANN201
    """Status, headers and body of one request on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        chunked = (headers or {}).get("Transfer-Encoding") == "chunked"
        connection.request(method, target, body=body, headers=headers or {}, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, response.msg, response.read()
    finally:
        connection.close()


def test_blocking_sleep_does_not_stall_other_requests_of_the_same_child(pyhttpd_factory):
    server = pyhttpd_factory(CONF, start_servers=1)
    pids = []
    slow_done: list[float] = []

    def sleeper() -> None:
        pids.append(parse_page(fetch(server.port, "/app/info")[2].decode())["pid"])
        fetch(server.port, "/app/sleep?seconds=3")
        slow_done.append(time.monotonic())

    thread = threading.Thread(target=sleeper)
    thread.start()
    time.sleep(0.5)
    status, _, body = fetch(server.port, "/app/info")
    fast_done = time.monotonic()
    thread.join(30)
    assert status == 200
    assert parse_page(body.decode())["pid"] == pids[0]  # the same child
    assert fast_done < slow_done[0] - 1.0


def test_application_that_raises_gets_500_and_the_child_serves_on(pyhttpd_factory):
    server = pyhttpd_factory(CONF, start_servers=1)
    pid = parse_page(fetch(server.port, "/app/info")[2].decode())["pid"]
    status, _, _ = fetch(server.port, "/app/raise")
    assert status == 500
    status, _, body = fetch(server.port, "/app/info")
    assert (status, parse_page(body.decode())["pid"]) == (200, pid)
    assert server.wait_for(lambda: "RuntimeError: the test application fails on purpose" in server.log_text())
    assert "Traceback (most recent call last)" in server.log_text()


def test_chunked_upload_reaches_the_application_whole(pyhttpd_factory):
    server = pyhttpd_factory(CONF)
    payload = pattern(1024 * 1024)
    chunks = (payload[i : i + 10_000] for i in range(0, len(payload), 10_000))
    status, _, body = fetch(server.port, "/app/info", "POST", chunks, {"Transfer-Encoding": "chunked"})
    page = parse_page(body.decode())
    assert status == 200
    assert page["body.sha256"] == hashlib.sha256(payload).hexdigest()
    assert "contentLength" not in page


def test_streamed_response_and_file_wrapper_arrive_whole(pyhttpd_factory):
    data = pattern(3 * 1024 * 1024)
    server = pyhttpd_factory(CONF, files={"data.bin": data})
    status, headers, body = fetch(server.port, "/app/big?bytes=5242880")
    assert (status, body) == (200, pattern(5 * 1024 * 1024))
    status, headers, body = fetch(server.port, f"/app/file?path={server.root / 'data.bin'}&offset=7")
    assert (status, headers["Content-Length"], body) == (200, str(len(data) - 7), data[7:])


def test_script_is_reloaded_in_every_child_when_it_changes(pyhttpd_factory, tmp_path):
    script = tmp_path / "app.py"
    source = (
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'VERSION']\n"
    )
    script.write_text(source.replace("VERSION", "one"))
    server = pyhttpd_factory(f"LoadModule wsgi_module modules/mod_wsgi\nWSGIScriptAlias /r {script}\n")
    assert fetch(server.port, "/r")[2] == b"one"
    script.write_text(source.replace("VERSION", "two"))
    mtime = script.stat().st_mtime_ns + 5_000_000_000
    os.utime(script, ns=(mtime, mtime))
    assert all(fetch(server.port, "/r")[2] == b"two" for _ in range(6))
