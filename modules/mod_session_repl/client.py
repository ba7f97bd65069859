"""The child's side of the session agent: a cooperative client over the agent's Unix socket.

One connection per child carries the requests of all its greenlets; each
request is numbered by its frame and answered by a REPLY naming that number, so
answers may come back in any order and a request waiting for a sync commit
holds up no other.  If the agent is being restarted by the master, the client
waits up to *connect_wait* seconds for it before giving up.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.hub import Waiter, get_hub
from gevent.lock import Semaphore

from pyhttpd.batch_send import BatchSender
from pyhttpd.socket_direct import os_socket

from .backend import SessionGone, SessionStoreUnavailable, SessionTooLarge
from .session import Delta, Session
from .wire import FrameError, FrameReader, FrameWriter, MessageType, WireError

CONNECT_WAIT = 10.0
RETRY_INTERVAL = 0.05
REAP_INTERVAL = 0.5  # how often overdue requests are failed (cheaper than a timer each)


class _Connection:
    """One connection to the agent.  No greenlet reads it: a watcher of the hub does,
    and each reply switches straight to the greenlet waiting for it.  Requests made
    during one turn of the event loop leave together (see :class:`BatchSender`)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self._raw = os_socket(sock)  # read from the hub, so it must never wait
        self.hub = get_hub()
        self.sender = BatchSender(sock, self._send_failed)
        self.reader = FrameReader(None)
        self.writer = FrameWriter("", None)
        self.pending: dict[int, tuple[Waiter, float]] = {}
        self.closed = False
        loop = self.hub.loop
        self._watcher = loop.io(sock.fileno(), 1)
        self._watcher.start(self._readable)
        self._reaper = loop.timer(REAP_INTERVAL, REAP_INTERVAL, ref=False)
        self._reaper.start(self._reap)

    def call(self, msg_type: MessageType, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self.closed:
            raise ConnectionError("the session agent closed the connection")
        data = self.writer.encode(msg_type, body, check=False)  # the agent checks it
        waiter = Waiter(self.hub)
        self.pending[self.writer.seq] = (waiter, time.monotonic() + timeout)
        self.sender.send(data)
        return waiter.get()

    def _readable(self) -> None:
        try:
            data = self._raw.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        try:
            frames = self.reader.feed(data)
        except WireError:
            self.close()
            return
        pending = self.pending
        for frame in frames:
            waiter = pending.pop(frame.body["re"], None)
            if waiter is not None:
                waiter[0].switch(frame.body)

    def _reap(self) -> None:
        now = time.monotonic()
        for seq, (waiter, deadline) in list(self.pending.items()):
            if deadline < now:
                del self.pending[seq]
                waiter.throw(TimeoutError())

    def _send_failed(self, exc: OSError) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._watcher.stop()
        self._reaper.stop()
        try:
            self.sock.close()
        except OSError:
            pass
        pending, self.pending = self.pending, {}
        if pending:
            # Waiters are woken from the hub, whoever closes.
            self.hub.loop.run_callback(_fail, list(pending.values()))


def _fail(waiters: list[tuple[Waiter, float]]) -> None:
    for waiter, _ in waiters:
        waiter.throw(ConnectionError("the session agent closed the connection"))


class AgentClient:
    """Talks to the node's session agent at *path* (see the module docstring).

    *timeout* bounds one request, including a state transfer the agent may
    still be running and the acknowledgements of a sync commit.
    """

    def __init__(self, path: str, *, timeout: float = 70.0, connect_wait: float = CONNECT_WAIT) -> None:
        self.path = path
        self.timeout = timeout
        self.connect_wait = connect_wait
        self._connection: _Connection | None = None
        self._connect_lock = Semaphore()

    def _connect(self) -> _Connection:
        conn = self._connection
        if conn is not None and not conn.closed:
            return conn
        with self._connect_lock:
            conn = self._connection
            if conn is not None and not conn.closed:
                return conn
            deadline = time.monotonic() + self.connect_wait
            while True:
                sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(self.path)
                    break
                except OSError as exc:
                    sock.close()
                    if time.monotonic() >= deadline:
                        raise SessionStoreUnavailable(
                            f"the session agent at {self.path} is not answering "
                            f"({exc.strerror or exc}) after {self.connect_wait:.0f} s"
                        ) from None
                    gevent.sleep(RETRY_INTERVAL)
            self._connection = _Connection(sock)
            return self._connection

    def call(self, msg_type: MessageType, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return the agent's reply.

        A connection lost before the reply (the agent died, or is dying while its
        successor starts) is retried on a new one for up to *connect_wait* seconds:
        every request is safe to repeat.
        """
        deadline = time.monotonic() + self.connect_wait
        while True:
            conn = self._connect()
            try:
                reply = conn.call(msg_type, body, self.timeout)
            except FrameError as exc:
                raise SessionTooLarge(str(exc)) from None
            except ConnectionError as exc:
                if time.monotonic() >= deadline:
                    raise SessionStoreUnavailable(f"the session agent went away: {exc}") from None
                gevent.sleep(RETRY_INTERVAL)
                continue
            except TimeoutError:
                raise SessionStoreUnavailable(
                    f"the session agent did not answer {msg_type.name} within {self.timeout:.0f} s"
                ) from None
            if not reply["ok"] and reply.get("error", "").startswith("not ready"):
                raise SessionStoreUnavailable(f"the session agent is {reply['error']}")
            return reply

    def close(self) -> None:
        """Drop the connection (a new one is made on the next request)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- the session store interface the request side uses -------------------------------------

    def load(self, session_id: str) -> Session | None:
        """The session with *session_id* (its id may come back rebound), or None."""
        reply = self.call(MessageType.GET, {"id": session_id})
        record = reply.get("session")
        if record is None:
            return None
        return Session(
            record["id"],
            record["attributes"],
            creation_time=record["created"],
            last_accessed=record["accessed"],
            max_inactive=record["max_inactive"],
            version=record["version"],
        )

    def commit(self, session: Session, delta: Delta, sync: bool) -> int:
        """Store a request's changes; the new version.  Raises SessionGone if it ended meanwhile."""
        reply = self.call(
            MessageType.COMMIT,
            {"id": session.id, "base": session.version, "delta": delta.to_dict(), "sync": sync},
        )
        if not reply["ok"]:
            error = reply.get("error", "")
            if error == "gone":
                raise SessionGone(session.id)
            if error.startswith("too large"):
                raise SessionTooLarge(f"session {session.id} is {error}")
            raise SessionStoreUnavailable(f"commit of {session.id} failed: {error}")
        return reply["version"]

    def invalidate(self, session_id: str, sync: bool) -> None:
        """End the session on every node."""
        self.call(MessageType.INVALIDATE, {"id": session_id, "sync": sync})

    def change_id(self, old_id: str, new_id: str) -> bool:
        """Move a session to a new id; False if it is gone."""
        return self.call(MessageType.CHANGE_SESSION_ID, {"old": old_id, "new": new_id})["ok"]

    def status(self) -> dict[str, Any]:
        """The agent's status (members, sessions, counters)."""
        return self.call(MessageType.STATUS, {})["status"]
