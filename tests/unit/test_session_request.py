"""A request's session: lazy creation, cookies, commit at the end, and the held-back response end."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from modules.mod_session_repl.backend import SessionStoreUnavailable
from modules.mod_session_repl.session import Session
from pyhttpd.config import Config
from pyhttpd.http_request import process_request
from pyhttpd.module import DECLINED, OK
from pyhttpd.request import Connection, HTTPError, Request

SID = "0123456789ABCDEF0123456789ABCDEF.node1"


class FakeStore:
    """A session store that records what happens, in one event list shared with the transport."""

    def __init__(self, events):
        self.events = events
        self.sessions: dict[str, Session] = {}
        self.down = False
        self.rebind_to: str | None = None

    def _check(self):
        if self.down:
            raise SessionStoreUnavailable("session store redis://127.0.0.1:1/0 unreachable: refused")

    def load(self, session_id):
        self._check()
        self.events.append(("load", session_id))
        found = self.sessions.get(session_id)
        if found is None:
            return None
        session = Session(
            self.rebind_to or found.id,
            dict(found),
            creation_time=found.creation_time,
            max_inactive=found.max_inactive,
            version=found.version,
        )
        return session

    def commit(self, session, delta, sync):
        self._check()
        self.events.append(("commit", session.id, delta.to_dict(), sync))
        stored = copy.deepcopy(session)
        stored.version += 1
        self.sessions[session.id] = stored
        return stored.version

    def invalidate(self, session_id, sync):
        self._check()
        self.events.append(("invalidate", session_id))
        self.sessions.pop(session_id, None)

    def change_id(self, old_id, new_id):
        return True

    def status(self):
        return {"store": "fake", "reachable": not self.down, "ping_ms": 0.1, "keys": len(self.sessions)}


class FakeTransport:
    def __init__(self, events):
        self.events = events

    def read_body(self, size):
        return b""

    def send_headers(self, r):
        self.events.append(("headers", r.status, r.headers_out.items() + r.err_headers_out.items()))

    def write(self, data):
        self.events.append(("write", data))

    def sendfile(self, file, offset, count):
        self.events.append(("sendfile", count))

    def flush(self):
        self.events.append(("flush",))


@pytest.fixture
def server(tmp_path: Path, monkeypatch):
    """A loaded config whose only handler is an app function the test sets, over a fake store."""
    (tmp_path / "htdocs").mkdir()
    conf = tmp_path / "httpd.conf"
    conf.write_text(
        f"ServerRoot {tmp_path}\nDocumentRoot htdocs\n"
        "LoadModule session_repl_module modules/mod_session_repl\nSessionRoute node1\n"
        "SessionMaxInactive 600\n<Location /status>\nSetHandler session-cluster-status\n</Location>\n"
    )
    config = Config.load(str(conf))
    module = config.module_by_name["session_repl_module"]
    events: list = []
    store = FakeStore(events)
    monkeypatch.setattr(module, "backend", lambda config: store)

    class Server:
        pass

    s = Server()
    s.config, s.events, s.store, s.app = config, events, store, None

    def handler(r):
        if s.app is None or r.uri.startswith("/status"):
            return DECLINED
        return s.app(r, r.notes["pyhttpd.session"])

    config.hooks.register("handler", handler, module="test")

    def request(uri="/app", cookie=None, method="GET", https=False):
        connection = Connection("127.0.0.1", 5555, "127.0.0.1", 80)
        connection.is_ssl = https
        r = Request(config, connection, FakeTransport(events))
        r.method, r.unparsed_uri = method, uri
        r.uri, _, query = uri.partition("?")
        r.args = query or None
        r.header_only = method == "HEAD"
        if cookie:
            r.headers_in.add("Cookie", cookie)
        events.clear()
        process_request(r)
        return r

    s.request = request
    return s


def body(r, chunks):
    r.content_type = "text/plain"
    r.headers_out.set("Content-Length", str(sum(len(c) for c in chunks)))
    for chunk in chunks:
        r.write(chunk)
    return OK


def set_cookies(events):
    headers = next(e[2] for e in events if e[0] == "headers")
    return [v for k, v in headers if k.lower() == "set-cookie"]


def test_a_request_that_does_not_touch_the_session_creates_none_and_streams_at_once(server):
    server.app = lambda r, session: body(r, [b"a", b"b"])
    server.request()
    assert server.events == [
        ("headers", 200, server.events[0][2]),
        ("write", b"a"),
        ("write", b"b"),
    ]
    assert set_cookies(server.events) == []
    assert server.store.sessions == {}


def test_a_new_session_is_committed_before_the_last_bytes_of_the_response(server):
    def app(r, session):
        session["user"] = "ann"
        return body(r, [b"hello ", b"ann"])

    server.app = app
    server.request()
    kinds = [e[0] for e in server.events]
    assert kinds == ["headers", "write", "commit", "write", "flush"]
    assert server.events[3] == ("write", b"ann")
    (cookie,) = set_cookies(server.events)
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert session_id.endswith(".node1") and len(session_id.split(".")[0]) == 32
    assert cookie.endswith("; Path=/; HttpOnly; SameSite=Lax")
    commit = server.events[2]
    assert commit[1] == session_id and commit[3] is True  # sync by default
    assert commit[2]["changes"] == [["set", "user", "ann"]] and commit[2]["max_inactive"] == 600


def test_the_cookie_is_secure_on_https(server):
    def app(r, session):
        session["x"] = 1
        return body(r, [b"x"])

    server.app = app
    server.request(https=True)
    assert "; Secure; HttpOnly" in set_cookies(server.events)[0]


def test_an_existing_session_is_found_by_cookie_or_path_parameter(server):
    server.store.sessions[SID] = Session(SID, {"n": 1}, creation_time=1.0, version=1)
    seen = []

    def app(r, session):
        seen.append((session.id, session.is_new, session["n"], r.uri))
        return body(r, [b"ok"])

    server.app = app
    server.request(cookie=f"other=1; JSESSIONID={SID}")
    server.request(uri=f"/app;jsessionid={SID}?q=1")
    assert seen == [(SID, False, 1, "/app"), (SID, False, 1, "/app")]
    assert all(e[0] != "commit" for e in server.events)  # read only: nothing to store
    assert set_cookies(server.events) == []


def test_only_changed_sessions_are_committed(server):
    server.store.sessions[SID] = Session(SID, {"n": 1}, creation_time=1.0, version=1)

    def app(r, session):
        session["n"] = session["n"] + 1
        return body(r, [b"ok"])

    server.app = app
    server.request(cookie=f"JSESSIONID={SID}")
    commits = [e for e in server.events if e[0] == "commit"]
    assert commits == [("commit", SID, {"changes": [["set", "n", 2]], "accessed": True}, True)]


def test_a_session_rebound_to_this_node_gets_a_new_cookie(server):
    server.store.sessions[SID] = Session(SID, {"n": 1}, creation_time=1.0, version=1)
    server.store.rebind_to = SID.replace(".node1", ".node2")
    server.app = lambda r, session: body(r, [session.id.encode()])
    server.request(cookie=f"JSESSIONID={SID}")
    assert set_cookies(server.events)[0].startswith(f"JSESSIONID={server.store.rebind_to};")


def test_an_unknown_session_id_gets_a_new_session(server):
    server.app = lambda r, session: body(r, [str(session.is_new).encode()])
    server.request(cookie=f"JSESSIONID={SID}")
    assert ("write", b"True") in server.events
    assert SID not in set_cookies(server.events)[0]


def test_exists_looks_without_creating(server):
    server.app = lambda r, session: body(r, [str(session.exists).encode()])
    server.request()
    assert ("write", b"False") in server.events and set_cookies(server.events) == []


def test_invalidation_is_sent_to_the_store(server):
    server.store.sessions[SID] = Session(SID, {"n": 1}, creation_time=1.0, version=1)

    def app(r, session):
        session.invalidate()
        return body(r, [b"bye"])

    server.app = app
    server.request(cookie=f"JSESSIONID={SID}")
    assert ("invalidate", SID) in server.events and SID not in server.store.sessions


def test_a_response_without_a_body_waits_for_the_commit_too(server):
    def app(r, session):
        session["x"] = 1
        r.status = 302
        r.headers_out.set("Location", "/next")
        r.headers_out.set("Content-Length", "0")
        r.send_headers()
        return OK

    server.app = app
    server.request()
    assert [e[0] for e in server.events] == ["commit", "headers", "flush"]


def test_a_store_that_is_down_gives_503_not_a_fresh_session(server):
    server.store.down = True

    def app(r, session):
        session["x"] = 1  # raises SessionUnavailable, an HTTPError 503
        return body(r, [b"never"])

    server.app = app
    r = server.request(cookie=f"JSESSIONID={SID}")
    assert r.status == 503
    assert ("write", b"never") not in server.events
    assert set_cookies(server.events) == []


def test_an_application_that_turns_the_outage_into_a_500_still_answers_503(server):
    server.store.down = True

    def app(r, session):
        try:
            session.get("x")
        except HTTPError:
            r.status = 500
            return body(r, [b"internal error page"])
        return body(r, [b"never"])

    server.app = app
    r = server.request(cookie=f"JSESSIONID={SID}")
    assert r.status == 503
    assert ("write", b"internal error page") not in server.events


def test_a_commit_that_fails_before_anything_was_sent_turns_into_503(server):
    def app(r, session):
        session["x"] = 1
        server.store.down = True
        r.status_line = "200 OK"  # as mod_wsgi sets it from start_response
        return body(r, [b"saved!"])

    server.app = app
    r = server.request()
    assert r.status == 503
    assert ("write", b"saved!") not in server.events
    headers = next(e for e in server.events if e[0] == "headers")
    assert headers[1] == 503 and r.status_line is None
    assert set_cookies(server.events) == []  # the session was never stored


def test_a_commit_that_fails_mid_response_cuts_the_response_short(server):
    def app(r, session):
        session["x"] = 1
        r.headers_out.set("Content-Length", "6")
        r.write(b"sav")
        server.store.down = True
        r.write(b"ed!")
        return OK

    server.app = app
    r = server.request()
    assert ("write", b"sav") in server.events and ("write", b"ed!") not in server.events
    assert r.connection.aborted and not r.keepalive


def test_the_status_handler_shows_the_store(server):
    server.request(uri="/status?auto")
    text = b"".join(e[1] for e in server.events if e[0] == "write").decode()
    assert "SessionStore: fake" in text and "SessionStoreReachable: 1" in text


def test_an_error_page_reached_by_internal_redirect_keeps_the_session_and_its_cookie(server):
    from pyhttpd.http_request import internal_redirect

    seen = []

    def app(r, session):
        if r.prev is None:
            session["from"] = "first"
            internal_redirect(r, "/error-page")
            return OK
        seen.append((session["from"], r.notes["wsgi_environ"]["pyhttpd.route"]))
        return body(r, [b"error page"])

    server.app = app
    server.request()
    assert seen == [("first", "node1")]
    (cookie,) = set_cookies(server.events)
    assert [e[0] for e in server.events if e[0] == "commit"] == ["commit"]
    assert cookie.split(";")[0].split("=")[1] in server.store.sessions
