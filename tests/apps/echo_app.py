"""A WSGI test application, wrapped in wsgiref's validator so every test also checks the
server's side of PEP 3333. Pages answer in "key=value" lines like the Tomcat test webapp
(tests/peers/webapp), so tests read both with tests.peers.page_text.parse_page.

    /info...               the request as the application saw it (any path under the mount)
    /session               counts requests in a session whose id ends in ".<node>"
    /big?bytes=N           N bytes of the pattern i % 251, streamed in 64 KiB pieces
    /status?code=N         that status
    /headers               multi-valued headers and two cookies
    /sleep?seconds=S       blocks in time.sleep, then answers
    /raise                 raises before start_response
    /raise-late            raises after sending part of the body
    /exc-info              recovers from an error with start_response(..., exc_info)
    /exc-info-late         calls start_response with exc_info after the body began
    /write                 uses the write() callable, then returns more
    /file?path=P           returns wsgi.file_wrapper(open(P)) (not validated: the validator
                           would hide the wrapper)
    /bytesio               returns wsgi.file_wrapper(BytesIO) (no descriptor: iterated)
    /close?marker=P        writes P when the server closes the iterable
    /lines                 reads the body with readline(), iteration and readlines()
    /length?declared=N     declares Content-Length N, sends 5 bytes
    /hop                   sets a hop-by-hop header (the server must refuse it)
    /errors                writes two lines to wsgi.errors
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import validator

StartResponse = Callable[..., Callable[[bytes], None]]
PATTERN = bytes(range(251))
TEXT = [("Content-Type", "text/plain; charset=utf-8")]


def pattern(size: int) -> bytes:
    """The bytes /big sends: byte i is i % 251."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def _page(fields: Iterable[tuple[str, object]]) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in fields if v is not None).encode("utf-8", "surrogateescape")


class _Closing:
    """An iterable that records its close() in a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __iter__(self) -> Iterator[bytes]:
        yield b"one "
        yield b"two"

    def close(self) -> None:
        with open(self.marker, "w") as f:
            f.write("closed")


def make_application(node: str) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The test application of a node named `node` (session ids end in ".<node>")."""
    sessions: dict[str, int] = {}

    def info(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        sha = hashlib.sha256()
        size = 0
        body = environ["wsgi.input"]
        while chunk := body.read(65536):
            sha.update(chunk)
            size += len(chunk)
        fields: list[tuple[str, object]] = [
            ("node", node),
            ("method", environ["REQUEST_METHOD"]),
            ("protocol", environ["SERVER_PROTOCOL"]),
            ("requestURI", environ.get("REQUEST_URI")),
            ("scriptName", environ["SCRIPT_NAME"]),
            ("pathInfo", environ["PATH_INFO"].encode("latin-1").decode("utf-8", "surrogateescape")),
            ("queryString", environ.get("QUERY_STRING")),
            ("contentType", environ.get("CONTENT_TYPE")),
            ("contentLength", environ.get("CONTENT_LENGTH")),
        ]
        for key in sorted(k for k in environ if k.startswith("HTTP_")):
            fields.append(("header." + key[5:].lower().replace("_", "-"), environ[key]))
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        fields += [(f"cookie.{name}", morsel.value) for name, morsel in cookie.items()]
        fields += [
            ("remoteAddr", environ.get("REMOTE_ADDR")),
            ("remotePort", environ.get("REMOTE_PORT")),
            ("remoteHost", environ.get("REMOTE_HOST")),
            ("remoteUser", environ.get("REMOTE_USER")),
            ("authType", environ.get("AUTH_TYPE")),
            ("serverName", environ["SERVER_NAME"]),
            ("serverPort", environ["SERVER_PORT"]),
            ("scheme", environ["wsgi.url_scheme"]),
            ("https", environ.get("HTTPS")),
            ("multithread", environ["wsgi.multithread"]),
            ("multiprocess", environ["wsgi.multiprocess"]),
            ("pid", os.getpid()),
        ]
        for key in sorted(k for k in environ if k.startswith(("SSL_", "AJP_", "JK_"))):
            fields.append(("env." + key, environ[key]))
        fields += [("body.bytes", size), ("body.sha256", sha.hexdigest())]
        body_bytes = _page(fields)
        start_response("200 OK", [*TEXT, ("Content-Length", str(len(body_bytes)))])
        return [body_bytes]

    def session(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        sid = cookie["JSESSIONID"].value if "JSESSIONID" in cookie else None
        headers = list(TEXT)
        new = sid not in sessions
        if new:
            sid = f"{uuid.uuid4().hex.upper()}.{node}"
            headers.append(("Set-Cookie", f"JSESSIONID={sid}; Path=/; HttpOnly"))
        sessions[sid] = sessions.get(sid, 0) + 1
        start_response("200 OK", headers)
        return [_page([("node", node), ("session", sid), ("counter", sessions[sid]), ("new", str(new).lower())])]

    def big(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        size = int(_query(environ, "bytes", "1048576"))
        headers = [("Content-Type", "application/octet-stream")]
        if _query(environ, "length", "") == "declared":
            headers.append(("Content-Length", str(size)))
        start_response("200 OK", headers)
        period = PATTERN * 262  # 65762 bytes, a whole number of periods
        block = 65536 - 65536 % len(PATTERN)
        sent = 0
        while sent < size:
            n = min(block, size - sent)
            yield period[:n]
            sent += n

    def status(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        code = int(_query(environ, "code", "200"))
        start_response(f"{code} Custom Reason", TEXT)
        return [f"status={code}\n".encode()]

    def headers(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response(
            "200 OK",
            [
                *TEXT,
                ("X-Pyhttpd-Multi", "one"),
                ("X-Pyhttpd-Multi", "two"),
                ("Set-Cookie", "alpha=1; Path=/"),
                ("Set-Cookie", "beta=2; HttpOnly"),
            ],
        )
        return [b"headers=sent\n"]

    def sleep(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        seconds = float(_query(environ, "seconds", "1"))
        time.sleep(seconds)
        start_response("200 OK", TEXT)
        return [f"slept={seconds}\n".encode()]

    def fail(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        raise RuntimeError("the test application fails on purpose")

    def fail_late(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        yield b"partial "
        raise RuntimeError("the test application fails after the headers on purpose")

    def exc_info(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        try:
            raise ValueError("recoverable")
        except ValueError:
            start_response("503 Service Unavailable", TEXT, sys.exc_info())
        return [b"recovered\n"]

    def exc_info_late(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        yield b"begun "
        try:
            raise ValueError("too late to recover")
        except ValueError:
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        yield b"never sent"

    def write(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        send = start_response("200 OK", TEXT)
        send(b"written ")
        return [b"returned\n"]

    def file(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        f = open(_query(environ, "path", ""), "rb")  # noqa: SIM115 - closed by the server
        f.seek(int(_query(environ, "offset", "0")))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 4096)

    def bytesio(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(pattern(100_000)), 8192)

    def close(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        return _Closing(_query(environ, "marker", ""))

    def lines(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = environ["wsgi.input"]
        first = body.readline()
        second = body.readline(4)
        rest_of_second = body.readline()
        middle = list(itertools.islice(iter(body), 2))
        tail = body.readlines()
        end = [body.read(1), body.readline()]
        start_response("200 OK", TEXT)
        return [
            _page(
                [
                    ("first", first.decode().rstrip("\n")),
                    ("second", (second + rest_of_second).decode().rstrip("\n")),
                    ("middle", "|".join(x.decode().rstrip("\n") for x in middle)),
                    ("tail", len(tail)),
                    ("tail.bytes", sum(len(x) for x in tail)),
                    ("end", repr(end)),
                ]
            )
        ]

    def length(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", _query(environ, "declared", "5"))])
        return [b"12345"]

    def hop(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Connection", "close")])
        return [b"never\n"]

    def errors(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.errors"]
        stream.write("first line from the application\nsecond ")
        stream.writelines(["line\n"])
        stream.flush()
        start_response("200 OK", TEXT)
        return [b"logged\n"]

    routes = {
        "/session": session,
        "/big": big,
        "/status": status,
        "/headers": headers,
        "/sleep": sleep,
        "/raise": fail,
        "/raise-late": fail_late,
        "/exc-info": exc_info,
        "/exc-info-late": exc_info_late,
        "/write": write,
        "/file": file,
        "/bytesio": bytesio,
        "/close": close,
        "/lines": lines,
        "/length": length,
        "/hop": hop,
        "/errors": errors,
    }

    def route(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return routes.get(environ.get("PATH_INFO", ""), info)(environ, start_response)

    validated = validator(route)

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # The validator wraps the returned iterable, which would hide a file_wrapper.
        if environ.get("PATH_INFO") in ("/file", "/bytesio"):
            return route(environ, start_response)
        return validated(environ, start_response)

    return application


def _query(environ: dict[str, Any], name: str, default: str) -> str:
    return parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0]


application = make_application(os.environ.get("PYHTTPD_TEST_NODE", "node"))
