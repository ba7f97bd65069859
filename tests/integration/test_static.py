"""Static files over real connections: validators, keep-alive, conditional and range
requests, traversal attempts as raw bytes on the wire, symlinks, mod_dir, ErrorDocument and
Require ip with a second loopback source address."""

from __future__ import annotations

import os
import random
import socket
import time

import pytest

from tests.integration.raw_http import Client, fetch
from tests.server import PyHttpd

SECRET = b"root:x:0:0:the secret outside the document root\n"
BIG = random.Random(7).randbytes(1024 * 1024 + 17)
SMALL = b"s" * 100
MIDDLE = random.Random(8).randbytes(100 * 1024)

CONF = """
LoadModule alias_module modules/mod_alias
LoadModule dir_module modules/mod_dir
LoadModule mime_module modules/mod_mime
LoadModule authz_core_module modules/mod_authz_core
LoadModule authz_host_module modules/mod_authz_host
LoadModule log_config_module modules/mod_log_config
CustomLog logs/access_log combined
Alias /files {root}/files
<Directory {root}/htdocs/strict>
    Options None
</Directory>
<Directory {root}/files>
    Options None
</Directory>
<Location /local-only>
    Require ip 127.0.0.1
</Location>
<Location /denied>
    Require all denied
</Location>
ErrorDocument 404 /errors/404.html
<Location /text-error>
    ErrorDocument 404 "plain text error"
</Location>
<Location /external-error>
    ErrorDocument 404 http://errors.example.com/nf
</Location>
"""

FILES = {
    "htdocs/index.html": "<h1>home</h1>",
    "htdocs/small.txt": SMALL,
    "htdocs/big.bin": BIG,
    "htdocs/middle.bin": MIDDLE,
    "htdocs/errors/404.html": "<h1>custom 404</h1>",
    "htdocs/docs/index.html": "docs index",
    "htdocs/strict/ok.txt": "strict ok",
    "htdocs/local-only/x.txt": "local",
    "htdocs/denied/x.txt": "denied",
    "files/a.txt": "aliased",
    "outside/secret.txt": SECRET,
}


@pytest.fixture(scope="module")
def site():
    server = PyHttpd(CONF, files=FILES, start_servers=1)
    root = server.root
    os.symlink(root / "outside" / "secret.txt", root / "htdocs" / "link.txt")
    os.symlink(root / "outside" / "secret.txt", root / "htdocs" / "strict" / "link.txt")
    os.symlink(root / "outside", root / "htdocs" / "strict" / "dirlink")
    os.symlink(root / "outside" / "secret.txt", root / "files" / "link.txt")
    old = 1_600_000_000
    os.utime(root / "htdocs" / "small.txt", (old, old))
    server.start()
    try:
        yield server
    finally:
        server.close()
        print(server.log_text())


def test_files_with_validators_on_one_keep_alive_connection(site):
    with Client(site.port) as client:
        first = client.request("/small.txt")
        second = client.request("/index.html")
        third = client.request("/small.txt", "HEAD")
    assert (first.status, first.body) == (200, SMALL)
    assert first.headers["content-type"] == "text/plain"
    assert first.headers["content-length"] == "100"
    assert first.headers["etag"] == f'"64-{1_600_000_000 * 1_000_000:x}"'
    assert first.headers["last-modified"] == "Sun, 13 Sep 2020 12:26:40 GMT"
    assert first.headers["accept-ranges"] == "bytes"
    assert (second.status, second.body, second.headers["content-type"]) == (200, b"<h1>home</h1>", "text/html")
    assert (third.status, third.body, third.headers["content-length"]) == (200, b"", "100")


def test_a_large_file_arrives_intact(site):
    response = fetch(site.port, "/big.bin")
    assert response.status == 200
    assert response.headers["content-length"] == str(len(BIG))
    assert response.body == BIG


def test_files_sent_from_memory_arrive_intact_when_the_client_reads_late(site):
    request = b"GET /middle.bin HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert fetch(site.port, "/middle.bin").body == MIDDLE
    time.sleep(1.1)  # now old enough to be kept in memory by the child
    with Client(site.port) as client:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.sock.sendall(request * 64)
        time.sleep(0.5)  # the responses fill every buffer on the way; the rest must wait
        responses = [client.read_response() for _ in range(64)]
    for response in responses:
        assert (response.status, response.headers["content-length"]) == (200, str(len(MIDDLE)))
        assert response.body == MIDDLE


def test_conditional_requests(site):
    etag = fetch(site.port, "/small.txt", "HEAD").headers["etag"]
    not_modified = fetch(site.port, "/small.txt", headers={"If-None-Match": etag})
    assert (not_modified.status, not_modified.body, not_modified.headers["etag"]) == (304, b"", etag)
    assert "content-length" not in not_modified.headers
    ims = fetch(site.port, "/small.txt", headers={"If-Modified-Since": "Sun, 13 Sep 2020 12:26:40 GMT"})
    assert ims.status == 304
    assert fetch(site.port, "/small.txt", headers={"If-Match": '"other"'}).status == 412
    changed = fetch(site.port, "/small.txt", headers={"If-None-Match": '"other"'})
    assert (changed.status, changed.body) == (200, SMALL)


def test_range_requests(site):
    one = fetch(site.port, "/big.bin", headers={"Range": "bytes=1000-1999"})
    assert (one.status, one.headers["content-range"], one.body) == (206, f"bytes 1000-1999/{len(BIG)}", BIG[1000:2000])
    tail = fetch(site.port, "/big.bin", headers={"Range": "bytes=-500000"})
    assert (tail.status, tail.body) == (206, BIG[-500000:])
    multi = fetch(site.port, "/small.txt", headers={"Range": "bytes=0-9,90-"})
    assert multi.status == 206
    assert multi.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert b"Content-range: bytes 0-9/100\r\n\r\n" + SMALL[:10] in multi.body
    assert b"Content-range: bytes 90-99/100\r\n\r\n" + SMALL[90:] in multi.body
    unsatisfiable = fetch(site.port, "/small.txt", headers={"Range": "bytes=100-"})
    assert (unsatisfiable.status, unsatisfiable.headers["content-range"]) == (416, "bytes */100")


@pytest.mark.parametrize(
    "target",
    [
        b"/../outside/secret.txt",
        b"/../../../../../../../../etc/passwd",
        b"/%2e%2e/outside/secret.txt",
        b"/%2E%2e/%2e%2E/outside/secret.txt",
        b"/docs/..%2f..%2foutside/secret.txt",
        b"/..%2foutside%2fsecret.txt",
        b"/%2e%2e%2foutside%2fsecret.txt",
        b"/small.txt%00.html",
        b"/%252e%252e/outside/secret.txt",
        b"/..%5c..%5coutside%5csecret.txt",
        b"/files/../outside/secret.txt",
        b"/files/%2e%2e/outside/secret.txt",
        b"/files/..%2f..%2foutside/secret.txt",
        b"/strict/link.txt",
        b"/strict/dirlink/secret.txt",
        b"/files/link.txt",
        b"http://localhost/../outside/secret.txt",
        b"/\x00/../outside/secret.txt",
        b"/./../outside/secret.txt",
    ],
)
def test_traversal_attempts_on_the_wire_are_refused(site, target):
    response = fetch(site.port, target)
    assert response.status in (400, 403, 404)
    assert SECRET not in response.body
    # the child keeps serving
    assert fetch(site.port, "/small.txt").status == 200


def test_a_symlink_is_followed_under_the_default_follow_symlinks(site):
    response = fetch(site.port, "/link.txt")
    assert (response.status, response.body) == (200, SECRET)
    assert fetch(site.port, "/strict/ok.txt").status == 200


def test_alias_serves_its_target(site):
    response = fetch(site.port, "/files/a.txt")
    assert (response.status, response.body) == (200, b"aliased")


def test_directories(site):
    redirect = fetch(site.port, "/docs?x=1")
    assert redirect.status == 301
    assert redirect.headers["location"] == f"http://localhost:{site.port}/docs/?x=1"
    index = fetch(site.port, "/docs/")
    assert (index.status, index.body) == (200, b"docs index")
    assert fetch(site.port, "/strict/").status == 403


def test_error_documents(site):
    local = fetch(site.port, "/nothing-here")
    assert (local.status, local.body) == (404, b"<h1>custom 404</h1>")
    text = fetch(site.port, "/text-error/none")
    assert (text.status, text.body) == (404, b"plain text error")
    external = fetch(site.port, "/external-error/none")
    assert (external.status, external.headers["location"]) == (302, "http://errors.example.com/nf")


def test_require_ip_allows_127_0_0_1_and_denies_another_loopback_address(site):
    allowed = fetch(site.port, "/local-only/x.txt", source_ip="127.0.0.1")
    assert (allowed.status, allowed.body) == (200, b"local")
    denied = fetch(site.port, "/local-only/x.txt", source_ip="127.0.0.2")
    assert denied.status == 403
    assert fetch(site.port, "/small.txt", source_ip="127.0.0.2").status == 200


def test_require_all_denied(site):
    assert fetch(site.port, "/denied/x.txt").status == 403


def test_methods(site):
    options = fetch(site.port, "/small.txt", "OPTIONS")
    assert (options.status, options.headers["allow"]) == (200, "GET,POST,OPTIONS,HEAD")
    post = fetch(site.port, "/small.txt", "POST", headers={"Content-Length": "0"})
    assert (post.status, post.headers["allow"]) == (405, "GET,POST,OPTIONS,HEAD")
