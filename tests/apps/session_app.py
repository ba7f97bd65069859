"""A WSGI application that uses ``environ['pyhttpd.session']``, for the session tests and bench.

Pages answer in "key=value" lines (read them with tests.peers.page_text.parse_page):
``node`` (this node's SessionRoute), and, when the session was used, ``session`` (its
id), ``new``, ``count`` and ``attributes`` (JSON).

    /count                 adds one to the session's counter
    /show                  the session as it is (creates one if there is none)
    /set?name=value...     sets string attributes
    /write?bytes=N         sets "data" to N bytes of text and counts the write
    /peek                  whether the request has a live session, without creating one
    /invalidate            ends the session
    /max-inactive?seconds=S  changes this session's max inactive time
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs


def _page(lines: dict[str, object]) -> bytes:
    return "".join(f"{key}={value}\n" for key, value in lines.items()).encode()


def application(environ, start_response):  # noqa: ANN001, ANN201
    session = environ["pyhttpd.session"]
    path = environ.get("PATH_INFO", "")
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    lines: dict[str, object] = {"node": environ.get("pyhttpd.route", "")}
    if path == "/peek":
        lines["exists"] = session.exists
        return _answer(start_response, lines)
    if path == "/invalidate":
        lines["session"] = session.id
        session.invalidate()
        lines["invalidated"] = True
        return _answer(start_response, lines)
    if path == "/count":
        session["count"] = session.get("count", 0) + 1
    elif path == "/set":
        session.update(query)
    elif path == "/write":
        session["data"] = "x" * int(query.get("bytes", "1024"))
        session["writes"] = session.get("writes", 0) + 1
    elif path == "/max-inactive":
        session.max_inactive = int(query["seconds"])
    lines["session"] = session.id
    lines["new"] = session.is_new
    lines["count"] = session.get("count", 0)
    lines["attributes"] = json.dumps(
        {k: v for k, v in session.items() if k != "data"}, sort_keys=True, separators=(",", ":")
    )
    return _answer(start_response, lines)


def _answer(start_response, lines):  # noqa: ANN001, ANN202
    body = _page(lines)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
