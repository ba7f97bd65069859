"""The demo cluster's application: which node served you, and a counter kept in your session.

    /          an HTML page (reload it: the counter grows, the node stays while it lives)
    /counter   the same as text/plain key=value lines, for scripts and tests
    /logout    ends the session

The session is mod_session_repl's ``environ['pyhttpd.session']``: replicated to the other
node, so when this node dies the next request, failed over by mod_jk, finds the counter.
"""

from __future__ import annotations

import html
import os
import socket


def application(environ, start_response):
    session = environ["pyhttpd.session"]
    node = environ.get("pyhttpd.route") or socket.gethostname()
    path = environ.get("PATH_INFO") or "/"
    if path == "/logout":
        session.invalidate()
        start_response("302 Found", [("Location", "/"), ("Content-Length", "0")])
        return [b""]
    if path not in ("/", "/counter"):
        body = b"not found\n"
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    session["counter"] = session.get("counter", 0) + 1
    session.setdefault("first_node", node)
    facts = {
        "node": node,
        "pid": os.getpid(),
        "counter": session["counter"],
        "first_node": session["first_node"],
        "session": session.id,
        "new": str(session.is_new).lower(),
    }
    if path == "/counter":
        body = "".join(f"{k}={v}\n" for k, v in facts.items()).encode()
        content_type = "text/plain; charset=utf-8"
    else:
        body = _page(facts).encode()
        content_type = "text/html; charset=utf-8"
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                              ("Cache-Control", "no-store")])
    return [body]


def _page(facts: dict) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items()
    )
    return (
        "<!DOCTYPE html>\n<html><head><title>pyhttpd demo cluster</title></head><body>\n"
        f"<h1>Served by {html.escape(str(facts['node']))}</h1>\n"
        f"<p>You have seen this page {facts['counter']} times in this session.</p>\n"
        f"<table>{rows}</table>\n"
        '<p><a href="/">reload</a> · <a href="/logout">end the session</a> · '
        '<a href="/jkstatus">jkstatus</a> · <a href="/server-status">server-status</a></p>\n'
        "</body></html>\n"
    )
