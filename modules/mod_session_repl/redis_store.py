"""Sessions in Redis (``SessionStore redis://host:port/db``), used by each child directly.

Each session is one hash, ``pyhttpd:{<id>}:s`` (the braces make the id a Redis
Cluster hash tag), with one field per attribute (``a:<name>``, the value as
JSON) and the bookkeeping fields ``_created``, ``_mi`` (max inactive seconds),
``_ver`` and ``_la`` (last access).  Expiry is the key's TTL, set to the max
inactive time and renewed by every request that uses the session, so Redis
itself forgets idle sessions; nothing needs CONFIG or keyspace notifications.

Loading, committing and rebinding are one Lua script each, so a commit is
atomic and only touches the attributes the request changed (parallel requests
on disjoint attributes both keep their changes).  A session whose key vanished
during the request (expired, invalidated) is not written back.

When Redis cannot be reached every operation raises SessionStoreUnavailable,
which the request turns into a 503: a session is never silently replaced by an
empty one.  Rebinding uses RENAME, so it needs a single Redis (not Redis
Cluster, where the old and new ids hash to different slots).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

from .backend import SessionGone, SessionStoreUnavailable
from .session import Delta, Session
from .session_id import rebind, split_route

ALIAS_TIME_MS = 60_000
CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 5.0

_LOAD = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  local moved = redis.call('GET', KEYS[2])
  if moved then return {'moved', moved} end
  return false
end
local data = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], '_la', ARGV[1])
local mi = tonumber(redis.call('HGET', KEYS[1], '_mi'))
if mi > 0 then redis.call('PEXPIRE', KEYS[1], mi * 1000) end
return data
"""

# ARGV: now, is_new, created, max_inactive ('' if unchanged), then triples (op, name, value).
_COMMIT = """
local exists = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[2] == '1' then
  if exists then return -1 end
  redis.call('HSET', KEYS[1], '_created', ARGV[3])
elseif not exists then
  return 0
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], '_mi', ARGV[4]) end
for i = 5, #ARGV, 3 do
  if ARGV[i] == 's' then
    redis.call('HSET', KEYS[1], 'a:' .. ARGV[i + 1], ARGV[i + 2])
  else
    redis.call('HDEL', KEYS[1], 'a:' .. ARGV[i + 1])
  end
end
redis.call('HSET', KEYS[1], '_la', ARGV[1])
local ver = redis.call('HINCRBY', KEYS[1], '_ver', 1)
local mi = tonumber(redis.call('HGET', KEYS[1], '_mi'))
if mi > 0 then redis.call('PEXPIRE', KEYS[1], mi * 1000) else redis.call('PERSIST', KEYS[1]) end
return ver
"""

# KEYS: old hash, new hash, the old id's alias key; ARGV: new id, alias lifetime (ms).
_MOVE = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
return 1
"""


def session_key(session_id: str) -> str:
    """The Redis key of a session's hash."""
    return f"pyhttpd:{{{session_id}}}:s"


def alias_key(session_id: str) -> str:
    """The key that, for a while, points an id that was rebound to its new id."""
    return f"pyhttpd:{{{session_id}}}:moved"


class RedisSessionStore:
    """A :class:`.backend.SessionBackend` kept in Redis.

    *route* and *route_rebind* are this node's ``SessionRoute`` and
    ``SessionRouteRebind``: a session arriving with another route is renamed so
    the balancer sends its next requests here.
    """

    def __init__(
        self, url: str, *, route: str | None = None, route_rebind: bool = False
    ) -> None:
        self.url = url
        self.route = route
        self.route_rebind = route_rebind
        self._client: redis.Redis | None = None
        self._pid = 0
        self._scripts: dict[str, Any] = {}

    def _redis(self) -> redis.Redis:
        # A client made before a fork would share its sockets with the parent.
        if self._client is None or self._pid != os.getpid():
            self._client = redis.Redis.from_url(
                self.url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT
            )
            self._pid = os.getpid()
            self._scripts = {
                name: self._client.register_script(source)
                for name, source in (("load", _LOAD), ("commit", _COMMIT), ("move", _MOVE))
            }
        return self._client

    def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        self._redis()
        try:
            return self._scripts[script](keys=keys, args=args)
        except redis.RedisError as exc:
            raise SessionStoreUnavailable(f"session store {self.url} unreachable: {exc}") from None

    def load(self, session_id: str) -> Session | None:
        """The session with *session_id* (renewing its TTL), rebound if it came from another route."""
        for _ in range(2):  # follow one alias left by a rebind
            raw = self._run("load", [session_key(session_id), alias_key(session_id)], [time.time()])
            if not raw:
                return None
            if raw[0] == b"moved":
                session_id = raw[1].decode()
                continue
            session = _session_from_hash(session_id, raw)
            if self.route_rebind and self.route and split_route(session_id)[1] != self.route:
                new_id = rebind(session_id, self.route)
                if self.change_id(session_id, new_id):
                    session.id = new_id
            return session
        return None

    def commit(self, session: Session, delta: Delta, sync: bool) -> int:
        """Write a request's changes; the new version.  SessionGone if the key vanished."""
        args: list[Any] = [
            time.time(),
            "1" if delta.created is not None else "0",
            repr(delta.created) if delta.created is not None else "",
            "" if delta.max_inactive is None else str(delta.max_inactive),
        ]
        for change in delta.changes:
            if change.op == "set":
                value = json.dumps(change.value, separators=(",", ":"), ensure_ascii=False)
                args += ["s", change.name, value]
            else:
                args += ["r", change.name, ""]
        version = self._run("commit", [session_key(session.id)], args)
        if version <= 0:
            raise SessionGone(session.id)
        return version

    def invalidate(self, session_id: str, sync: bool) -> None:
        """Delete the session."""
        try:
            self._redis().delete(session_key(session_id))
        except redis.RedisError as exc:
            raise SessionStoreUnavailable(f"session store {self.url} unreachable: {exc}") from None

    def change_id(self, old_id: str, new_id: str) -> bool:
        """Rename a session; its old id finds it for another minute.  False if it is gone."""
        keys = [session_key(old_id), session_key(new_id), alias_key(old_id)]
        return self._run("move", keys, [new_id, ALIAS_TIME_MS]) == 1

    def status(self) -> dict[str, Any]:
        """Whether Redis answers, how fast, and how many keys it holds."""
        started = time.perf_counter()
        try:
            client = self._redis()
            client.ping()
            keys = client.dbsize()
        except redis.RedisError as exc:
            return {"store": self.url, "reachable": False, "error": str(exc)}
        return {
            "store": self.url,
            "reachable": True,
            "ping_ms": round((time.perf_counter() - started) * 1000, 3),
            "keys": keys,
        }

    def close(self) -> None:
        """Drop the connections."""
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None


def _session_from_hash(session_id: str, raw: list[bytes]) -> Session:
    fields = {raw[i].decode(): raw[i + 1] for i in range(0, len(raw), 2)}
    attributes = {
        name[2:]: json.loads(value) for name, value in fields.items() if name.startswith("a:")
    }
    created = float(fields.get("_created", b"0"))
    return Session(
        session_id,
        attributes,
        creation_time=created,
        last_accessed=float(fields.get("_la", b"0")) or created,
        max_inactive=int(fields.get("_mi", b"0")),
        version=int(fields.get("_ver", b"0")),
    )
