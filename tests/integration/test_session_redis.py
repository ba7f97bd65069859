"""Sessions kept in a real redis-server (SessionStore redis://...), by the store and by pyhttpd nodes."""

from __future__ import annotations

import time

import pytest
import redis

from modules.mod_session_repl.backend import SessionGone, SessionStoreUnavailable
from modules.mod_session_repl.redis_store import RedisSessionStore, session_key
from modules.mod_session_repl.session import Session
from modules.mod_session_repl.session_id import new_session_id
from tests.integration.session_nodes import SESSION_APP, Browser, request

SID = "0123456789ABCDEF0123456789ABCDEF.node1"


def new(session_id=SID, max_inactive=600, **values):
    session = Session(session_id, creation_time=time.time(), max_inactive=max_inactive, is_new=True)
    session.update(values)
    return session


def test_a_session_is_one_hash_with_a_ttl_of_its_max_inactive_time(redis_server):
    store = RedisSessionStore(redis_server.url)
    session = new(cart=["a", {"q": 2}], user="ann")
    assert store.commit(session, session.delta(), sync=True) == 1
    raw = redis.Redis.from_url(redis_server.url)
    fields = raw.hgetall(session_key(SID))
    assert fields[b"a:cart"] == b'["a",{"q":2}]' and fields[b"_mi"] == b"600"
    assert 590_000 < raw.pttl(session_key(SID)) <= 600_000
    loaded = store.load(SID)
    assert dict(loaded) == {"cart": ["a", {"q": 2}], "user": "ann"}
    assert (loaded.version, loaded.max_inactive, loaded.is_new) == (1, 600, False)


def test_a_commit_writes_only_what_the_request_changed(redis_server):
    store = RedisSessionStore(redis_server.url)
    first = new(a=1, b=1)
    store.commit(first, first.delta(), sync=True)
    one, two = store.load(SID), store.load(SID)  # two requests at once on two nodes
    one["a"] = 2
    del two["b"]
    two["c"] = 3
    store.commit(one, one.delta(), sync=True)
    store.commit(two, two.delta(), sync=True)
    assert dict(store.load(SID)) == {"a": 2, "c": 3}


def test_an_expired_session_is_not_written_back(redis_server):
    store = RedisSessionStore(redis_server.url)
    session = new(max_inactive=1, n=1)
    store.commit(session, session.delta(), sync=True)
    loaded = store.load(SID)
    time.sleep(1.2)
    assert store.load(SID) is None
    loaded["n"] = 2
    with pytest.raises(SessionGone):
        store.commit(loaded, loaded.delta(), sync=True)
    assert store.load(SID) is None


def test_a_session_from_another_route_is_rebound_and_its_old_id_still_finds_it(redis_server):
    node1 = RedisSessionStore(redis_server.url, route="node1", route_rebind=True)
    node2 = RedisSessionStore(redis_server.url, route="node2", route_rebind=True)
    session = new(new_session_id("node1"), n=1)
    node1.commit(session, session.delta(), sync=True)
    moved = node2.load(session.id)
    assert moved.id == session.id.replace(".node1", ".node2") and moved["n"] == 1
    assert node2.load(session.id).id == moved.id  # a request still carrying the old id


def test_an_unreachable_redis_raises_instead_of_answering_empty(redis_server):
    store = RedisSessionStore(redis_server.url)
    session = new(n=1)
    store.commit(session, session.delta(), sync=True)
    redis_server.stop()
    with pytest.raises(SessionStoreUnavailable, match="unreachable"):
        store.load(SID)
    assert store.status()["reachable"] is False


def redis_conf(url: str, extra: str = "") -> str:
    return (
        "LoadModule wsgi_module modules/mod_wsgi\n"
        f"WSGIScriptAlias /app {SESSION_APP}\n"
        "LoadModule session_repl_module modules/mod_session_repl\n"
        f"SessionRoute node1\nSessionStore {url}\n"
        "<Location /cluster-status>\nSetHandler session-cluster-status\n</Location>\n" + extra
    )


def test_nodes_share_sessions_through_redis(redis_server, pyhttpd_factory):
    node1 = pyhttpd_factory(redis_conf(redis_server.url), start_servers=1)
    node2 = pyhttpd_factory(redis_conf(redis_server.url).replace("node1", "node2"), start_servers=1)
    browser = Browser(node1.port)
    assert browser.get("/app/count")["count"] == "1"
    page = browser.get("/app/count", port=node2.port)
    assert (page["count"], page["node"]) == ("2", "node2")
    assert browser.session_id.endswith(".node2")  # rebound, so a sticky balancer follows
    assert browser.get("/app/count", port=node1.port)["count"] == "3"
    _, _, status = request(node1.port, "/cluster-status?auto")
    assert "SessionStoreReachable: 1" in status


def test_redis_down_gives_503_with_a_clear_log_line_then_recovers(redis_server, pyhttpd_factory):
    node = pyhttpd_factory(redis_conf(redis_server.url), start_servers=1)
    browser = Browser(node.port)
    browser.get("/app/count")
    redis_server.stop()
    status, headers, _ = request(node.port, "/app/count", f"JSESSIONID={browser.session_id}")
    assert status == 503 and "set-cookie" not in headers
    status, _, _ = request(node.port, "/app/count")  # a new session cannot be stored either
    assert status == 503
    assert request(node.port, "/app/peek")[0] == 200  # no session needed, no store needed
    assert node.wait_for(lambda: f"session store {redis_server.url} unreachable" in node.log_text())
    redis_server.start()  # empty: this redis keeps nothing on disk
    fresh = Browser(node.port)
    assert fresh.get("/app/count")["count"] == "1"
    assert fresh.get("/app/count")["count"] == "2"
    status, _, body = request(node.port, "/app/count", f"JSESSIONID={browser.session_id}")
    assert status == 200 and "new=True" in body  # the old session was lost with redis's memory
