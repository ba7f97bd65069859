"""The session agent: one process per node that holds the node's sessions.

The master runs it as a supervised helper (as httpd runs mod_cgid's daemon).
Children reach it over a Unix socket (mode 0600, local frames without HMAC);
other nodes' agents over TCP links authenticated with the cluster secret (see
:mod:`.peer`).  It is a single gevent process, so the store needs no locks.

Per request a child sends at most two frames: GET when the application first
touches a session (which also records the access), and COMMIT at the end if
the request changed it.  A commit is applied here, then sent to the members:
to every one in ``delta`` replication, to the session's backup member in
``backup`` replication.  The changes committed during one turn of the event
loop go to each member in one DELTA_BATCH frame, acknowledged as a whole.  In
sync mode the reply to the child waits until each alive member acknowledged
having *applied* the change, or until ``ACK_TIMEOUT``; a member that misses it
is suspected and later commits stop waiting for it.  In async mode the reply
goes at once, unless a member has ``ASYNC_WINDOW`` changes unacknowledged:
then commits wait for it as in sync mode, which bounds the queue and what a
crash can lose.  The waiting costs no greenlet: the reply leaves from the last
acknowledgement's callback, and one loop handles the overdue ones.  A member
that answers ``missing`` or ``gap`` gets the whole session.

Reads and expiry: accesses are announced to the members in batches, at most
once per session per quarter of its max inactive time; expiry sweeps remove
idle sessions and tell the members, which also expire their copies themselves
after twice the time if they hear nothing.

A starting agent is not ready: it asks the oldest connected member for all its
sessions (a state transfer, chunk by chunk, each acknowledged) and answers
children only when done, or after ``ClusterStateTransferTimeout``.  Whenever
a link to a member comes up, the member also gets the sessions this node is
primary for, so one that was cut off for a while catches up.  A request for a
session this node lacks is pulled from the members before it is declared
unknown, which covers backup replication and any change still in flight.
"""

from __future__ import annotations

import errno
import operator
import os
import secrets
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.event import AsyncResult, Event
from gevent.hub import get_hub
from gevent.pool import Group
from gevent.server import StreamServer

from pyhttpd.batch_send import BatchSender

from .membership import Member, Membership
from .multicast import MulticastService
from .peer import PeerLink, percentile
from .session import Delta
from .session_id import rebind, split_route
from .settings import ACK_TIMEOUT, CLUSTER_NAME, ClusterSettings, format_address, parse_address
from .store import SessionStore, backup_member_for
from .wire import (
    DEFAULT_MAX_FRAME,
    AuthError,
    Frame,
    FrameError,
    FrameReader,
    FrameWriter,
    MessageType,
    Payload,
    WireError,
    compact_json,
    transfer_chunks,
)

CONNECT_TIMEOUT = 2.0
RECONNECT_MIN = 0.05
RECONNECT_MAX = 2.0
SETTLE_TIME = 3.0  # longest wait to learn who is alive before a state transfer
MULTICAST_SETTLE = 1.5  # three heartbeats
ANNOUNCE_INTERVAL = 1.0  # longest wait before reads are announced
IDS_PER_FRAME = 5000
ASYNC_WINDOW = 1000  # changes in flight to one member before async commits wait too
MAX_SESSION_BYTES = DEFAULT_MAX_FRAME // 2  # a session must fit in one frame, with room to spare
BATCH_BYTES = DEFAULT_MAX_FRAME // 2  # deltas in one DELTA_BATCH, as the child's frames measured them
AUTH_LOG_INTERVAL = 10.0

Log = Callable[[str, str], None]
# Counter names per message type, made once.
_SENT = {t: f"sent_{t.name.lower()}" for t in MessageType}
_RECEIVED = {t: f"received_{t.name.lower()}" for t in MessageType}


def _stderr_log(level: str, message: str) -> None:
    sys.stderr.write(f"[session_repl:{level}] {message}\n")


def _ignore(ack: dict[str, Any]) -> None:
    """An acknowledgement nobody waits for."""


class _Waiting:
    """A sync change waiting for its members' acknowledgements (or its deadline)."""

    __slots__ = ("done", "deadline", "msg_type", "session_id", "members")

    def __init__(
        self, done: Callable[[], None], deadline: float, msg_type: MessageType, session_id: str
    ) -> None:
        self.done: Callable[[], None] | None = done
        self.deadline = deadline
        self.msg_type = msg_type
        self.session_id = session_id
        self.members: set[Member] = set()

    @property
    def what(self) -> str:
        """The change, in words for the log."""
        return f"{self.msg_type.name} of {self.session_id}"

    @property
    def finished(self) -> bool:
        return self.done is None

    def expect(self, member: Member) -> Callable[[dict[str, Any]], None]:
        """The acknowledgement callback for *member*."""
        self.members.add(member)

        def answered(ack: dict[str, Any]) -> None:
            self.members.discard(member)
            self.settle()

        return answered

    def settle(self) -> bool:
        """Finish if nobody is left to wait for; whether finished."""
        if not self.members:
            self.finish()
        return self.finished

    def finish(self) -> None:
        done, self.done = self.done, None
        if done is not None:
            done()


@dataclass
class _Transfer:
    """A state transfer in progress from one donor."""

    link: PeerLink
    done: Event = field(default_factory=Event)
    complete: dict[str, Any] | None = None
    sessions: int = 0
    chunks: int = 0


class SessionAgent:
    """One node's sessions, served to its children and replicated to its members."""

    def __init__(self, settings: ClusterSettings, log: Log = _stderr_log) -> None:
        self.settings = settings
        self.member_id = settings.member_id
        self.log = log
        self.store = SessionStore(self.member_id, default_max_inactive=settings.max_inactive)
        self.incarnation = secrets.randbits(63)
        self.started_ms = int(time.time() * 1000)
        self.membership = Membership(settings.listen, settings.members)
        self.ready = Event()
        self.stopped = Event()
        self.counters: Counter[str] = Counter()
        self.transfer: dict[str, Any] = {"state": "pending"}
        self._transfer: _Transfer | None = None
        self._bytes = 0  # of the sessions' attributes, measured by the sweep
        self._waiting: list[_Waiting] = []  # sync changes waiting for acknowledgements
        # The DELTAs of this turn of the loop per member: ([id, version, delta], on_applied).
        self._batches: dict[PeerLink, list[tuple[list[Any], Callable[[dict[str, Any]], None] | None]]] = {}
        self._batch_bytes = 0
        self._batch_scheduled = False
        self._to_announce: set[str] = set()
        self._announced: dict[str, float] = {}
        # Seconds between access announcements: an eighth of the max inactive time, within
        # 0.1-1 s, so replicas hear of reads well before they would expire.
        self._announce_interval = (
            ANNOUNCE_INTERVAL
            if settings.max_inactive <= 0
            else min(ANNOUNCE_INTERVAL, max(0.1, settings.max_inactive / 8))
        )
        self._auth_log: dict[str, tuple[float, int]] = {}
        self._greenlets = Group()
        self._servers: list[StreamServer] = []
        self._multicast: MulticastService | None = None
        self._connecting: set[tuple[str, int]] = set()
        self.cluster_address = format_address(settings.listen) if settings.listen else ""

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the sockets and start serving; the state transfer runs in the background."""
        self._servers.append(StreamServer(self._bind_local(), self._serve_local))
        if self.settings.clustered:
            listener = gsocket.socket(socket.AF_INET6 if ":" in self.settings.listen[0] else socket.AF_INET)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(self.settings.listen)
            listener.listen(128)
            self._servers.append(StreamServer(listener, self._accept_peer))
        for server in self._servers:
            server.start()
        if self.settings.clustered:
            for member in self.membership:
                self._spawn_connect(member)
            if self.settings.multicast is not None:
                self._start_multicast()
            self._greenlets.spawn(self._state_transfer)
        else:
            self.transfer = {"state": "not clustered"}
            self.ready.set()
        self._greenlets.spawn(self._sweep_loop)
        self._greenlets.spawn(self._announce_loop)
        self._greenlets.spawn(self._ack_timeout_loop)
        members = ", ".join(m.name for m in self.membership) or "none yet"
        where = f" on {self.cluster_address}" if self.settings.clustered else ""
        self.log(
            "notice",
            f"session agent {self.member_id} started{where}: replication "
            f"{self.settings.replication}"
            + (f" {'sync' if self.settings.sync else 'async'}" if self.settings.clustered else "")
            + (f", members: {members}" if self.settings.clustered else ""),
        )

    def stop(self) -> None:
        """Stop serving and close every link."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        if self._multicast is not None:
            self._multicast.stop()
        for server in self._servers:
            server.close()
        for member in self.membership:
            for link in (member.outbound, member.inbound):
                if link is not None:
                    link.close("agent stopping")
        self._greenlets.kill(block=False)
        try:
            os.unlink(self.settings.agent_socket)
        except OSError:
            pass

    def serve_forever(self) -> None:
        """Start, then run until :meth:`stop`."""
        self.start()
        self.stopped.wait()

    def _bind_local(self) -> Any:
        path = self.settings.agent_socket
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if _answers(path):
            # Another node's agent: taking its socket would hand this node's children its
            # sessions, and its children ours.
            raise OSError(
                errno.EADDRINUSE,
                f"another session agent listens on {path}; give each node its own SessionAgentSocket",
            )
        try:
            os.unlink(path)  # left by an agent that died
        except FileNotFoundError:
            pass
        sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(511)
        return sock

    # -- children ----------------------------------------------------------------------------

    def _serve_local(self, sock: Any, address: Any) -> None:
        reader = FrameReader(None)
        writer = FrameWriter("", None)
        # Replies that become ready in one turn of the loop (those of the frames of one
        # receive, or the sync commits a batch of ACKs completes) leave in one send.
        sender = BatchSender(sock, lambda exc: sock.close())

        def reply(seq: int, body: dict[str, Any]) -> None:
            body["re"] = seq
            try:
                sender.send(writer.encode(MessageType.REPLY, body, check=False))
            except FrameError as exc:  # a reply too large for a frame: say so instead
                error = {"re": seq, "ok": False, "error": f"too large: {exc}"}
                sender.send(writer.encode(MessageType.REPLY, error))

        def answer_later(frame: Frame) -> None:
            reply(frame.seq, self._local_request(frame))

        while True:
            try:
                data = sock.recv(262144)
            except OSError:
                return
            if not data:
                return
            try:
                frames = reader.feed(data)
            except WireError as exc:
                self.log("error", f"bad frame from a child, connection closed: {exc}")
                return
            for frame in frames:
                if self._may_wait(frame):
                    self._greenlets.spawn(answer_later, frame)
                elif frame.type in (MessageType.COMMIT, MessageType.INVALIDATE):
                    # Answered when the members acknowledged (sync), without a greenlet.
                    self._change(frame, partial(reply, frame.seq))
                else:
                    reply(frame.seq, self._local_request(frame))

    def _may_wait(self, frame: Frame) -> bool:
        """Whether answering *frame* may block (and so needs a greenlet of its own)."""
        msg_type = frame.type
        if msg_type is MessageType.STATUS:
            return False
        if not self.ready.is_set():
            return True
        if msg_type is MessageType.GET:
            session_id = frame.body["id"]
            session = self.store.get(session_id)
            if session is None:
                return not self.store.is_gone(session_id) and bool(self.membership.connected())
            return self._needs_rebind(session.id) and bool(self.membership.connected())
        return msg_type is MessageType.CHANGE_SESSION_ID and bool(self.membership.connected())

    def _change(self, frame: Frame, answer: Callable[[dict[str, Any]], None]) -> None:
        """Carry out a COMMIT or INVALIDATE from a child; *answer* gets the reply."""
        body = frame.body
        sync = body.get("sync", self.settings.sync)
        try:
            if frame.type is MessageType.COMMIT:
                self.commit(body["id"], body["delta"], sync, answer, frame.length)
            else:
                self.invalidate(body["id"], sync, answer)
        except Exception as exc:  # a bug must not take the agent down with it
            self.log("error", f"{frame.type.name} failed: {type(exc).__name__}: {exc}")
            answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})

    def _local_request(self, frame: Frame) -> dict[str, Any]:
        body = frame.body
        try:
            if frame.type is MessageType.STATUS:
                return {"ok": True, "status": self.status()}
            if not self.ready.wait(self.settings.state_transfer_timeout + ACK_TIMEOUT):
                return {"ok": False, "error": "not ready: state transfer still running"}
            if frame.type is MessageType.GET:
                return self.get(body["id"])
            if frame.type in (MessageType.COMMIT, MessageType.INVALIDATE):
                result = AsyncResult()
                self._change(frame, result.set)
                return result.get()
            if frame.type is MessageType.CHANGE_SESSION_ID:
                return self.change_id(body["old"], body["new"], self.settings.sync)
        except Exception as exc:  # a bug must not take the agent down with it
            self.log("error", f"{frame.type.name} failed: {type(exc).__name__}: {exc}")
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": False, "error": f"{frame.type.name} is not a request"}

    # -- the operations children ask for ------------------------------------------------------

    def _needs_rebind(self, session_id: str) -> bool:
        route = self.settings.route
        return bool(self.settings.route_rebind and route and split_route(session_id)[1] != route)

    def get(self, session_id: str) -> dict[str, Any]:
        """The session for a request (pulled from the members if missing here); records the access.

        The reply's attributes are the store's own: encode it, do not change it.
        """
        session = self.store.get(session_id)
        if session is None and not self.store.is_gone(session_id) and self.membership.connected():
            self._pull([session_id])
            session = self.store.get(session_id)
        if session is None:
            return {"ok": True, "session": None}
        now = time.time()
        last_accessed = session.last_accessed
        self.store.access(session.id, now)
        self._note_access(session.id, session.max_inactive, now)
        if self._needs_rebind(session.id):
            old_id, new_id = session.id, rebind(session.id, self.settings.route)
            if self.store.change_id(old_id, new_id, now):
                self.counters["rebinds"] += 1
                self._replicate_and_wait(
                    new_id,
                    MessageType.CHANGE_SESSION_ID,
                    {"old": old_id, "new": new_id},
                    self.settings.sync,
                )
            session = self.store.get(new_id) or session
        return {
            "ok": True,
            "session": {
                "id": session.id,
                "version": session.version,
                "created": session.creation_time,
                "accessed": last_accessed,
                "max_inactive": session.max_inactive,
                "attributes": session.attributes,
            },
        }

    def commit(
        self,
        session_id: str,
        raw_delta: dict[str, Any],
        sync: bool,
        answer: Callable[[dict[str, Any]], None],
        length: int | None = None,
    ) -> None:
        """Apply a request's changes and replicate them.

        *answer* gets the reply: at once, or in sync mode once every alive member
        acknowledged (or ACK_TIMEOUT passed).  *length*, if known, is at least the
        bytes of *raw_delta* as JSON (the length of the frame it came in).
        """
        try:
            delta = Delta.from_dict(raw_delta)
        except ValueError as exc:
            answer({"ok": False, "error": f"malformed delta: {exc}"})
            return
        if length is None:
            length = len(compact_json(raw_delta))
        size = self._oversize(session_id, delta, length)
        if size is not None:
            self.counters["oversize_commits"] += 1
            answer(
                {
                    "ok": False,
                    "error": f"too large: the session would hold {size} bytes of attributes, "
                    f"more than the limit of {MAX_SESSION_BYTES}",
                }
            )
            return
        now = time.time()
        try:
            version = self.store.commit(session_id, delta, now, length)
        except (KeyError, ValueError):
            answer({"ok": False, "error": "gone"})
            return
        self.counters["commits"] += 1
        session = self.store.get(session_id)
        resolved = session.id if session is not None else session_id
        reply = {"ok": True, "version": version}
        if delta.invalidate:
            msg_type, body, everyone = MessageType.INVALIDATE, {"id": resolved}, True
        else:
            msg_type, body, everyone = (
                MessageType.DELTA,
                {"id": resolved, "version": version, "delta": raw_delta},
                False,
            )
        self._replicate(resolved, msg_type, body, sync, partial(answer, reply), everyone, length)

    def _oversize(self, session_id: str, delta: Delta, length: int) -> int | None:
        """The size the session would have after *delta* (at most *length* bytes of
        JSON), if that is over the limit.

        A session must fit in one frame to be replicated, transferred and read back.
        Only a session near the limit is measured precisely.
        """
        session = self.store.get(session_id)
        current = session.size_at_most() if session is not None else 0
        if current + length <= MAX_SESSION_BYTES:
            return None
        if session is not None and session.measure() + length <= MAX_SESSION_BYTES:
            return None
        attributes = dict(session.attributes) if session is not None else {}
        for change in delta.changes:
            if change.op == "set":
                attributes[change.name] = change.value
            else:
                attributes.pop(change.name, None)
        size = len(compact_json(attributes))
        return size if size > MAX_SESSION_BYTES else None

    def invalidate(
        self, session_id: str, sync: bool, answer: Callable[[dict[str, Any]], None]
    ) -> None:
        """End a session here and on every member; *answer* as for :meth:`commit`."""
        session = self.store.get(session_id)
        resolved = session.id if session is not None else session_id
        self.store.invalidate(resolved, time.time())
        self.counters["invalidations"] += 1
        self._replicate(
            resolved,
            MessageType.INVALIDATE,
            {"id": resolved},
            sync,
            partial(answer, {"ok": True}),
            everyone=True,
        )

    def change_id(self, old_id: str, new_id: str, sync: bool) -> dict[str, Any]:
        """Give a session a new id (as at login); the old one resolves for a while."""
        if not self.store.change_id(old_id, new_id, time.time()):
            return {"ok": False, "error": "gone"}
        self._replicate_and_wait(
            new_id, MessageType.CHANGE_SESSION_ID, {"old": old_id, "new": new_id}, sync
        )
        return {"ok": True}

    # -- replication -------------------------------------------------------------------------

    def _targets(self, session_id: str, everyone: bool) -> list[PeerLink]:
        members = self.membership.connected()
        if everyone or self.settings.replication != "backup":
            return [m.outbound for m in members]
        by_id = {m.id: m for m in members if m.id}
        backup = backup_member_for(session_id, [self.member_id, *by_id], primary=self.member_id)
        return [by_id[backup].outbound] if backup in by_id else []

    def _replicate(
        self,
        session_id: str,
        msg_type: MessageType,
        body: dict[str, Any],
        sync: bool,
        done: Callable[[], None],
        everyone: bool = False,
        length: int | None = None,
    ) -> None:
        """Send a change to its members; call *done* once every alive member applied it
        (sync), or at once (async, or nobody to wait for).  A DELTA (*length*: at least
        its bytes of JSON) joins the batch of this turn of the loop; anything else goes
        after the batch."""
        links = self._targets(session_id, everyone) if self.settings.clustered else []
        if not links:
            done()
            return
        self.counters[_SENT[msg_type]] += 1
        batched = msg_type is MessageType.DELTA
        if batched:
            if length is None:
                length = len(compact_json(body["delta"]))
            if self._batch_bytes + length > BATCH_BYTES:
                self._send_batches()
            self._batch_bytes += length
            entry = [session_id, body["version"], body["delta"]]
        else:
            self._send_batches()
            try:
                # The delta was checked by Delta.from_dict, the rest is this node's own.
                payload = Payload.of(msg_type, {**body, "ack": True}, local=False, check=False)
            except FrameError as exc:
                self.log("error", f"{msg_type.name} of {session_id} not replicated: {exc}")
                done()
                return
        now = time.monotonic()
        waiting = _Waiting(done, now + ACK_TIMEOUT, msg_type, session_id)
        for link in links:
            batch = self._batches.get(link) if batched else None
            # Async commits wait too once a member falls this far behind: that bounds
            # both the queue and what a crash of this node can lose.
            behind = link.unanswered + link.queue_length + len(batch or ()) >= ASYNC_WINDOW
            expected = (sync or behind) and link.member.state(now) == "alive"
            on_applied = waiting.expect(link.member) if expected else None
            if not batched:
                link.request(msg_type, payload, partial(self._acknowledged, link, session_id, on_applied))
            elif batch is None:
                self._batches[link] = [(entry, on_applied)]
            else:
                batch.append((entry, on_applied))
        if batched and not self._batch_scheduled:
            self._batch_scheduled = True
            get_hub().loop.run_callback(self._send_batches)
        if not waiting.settle():
            self._waiting.append(waiting)

    def _send_batches(self) -> None:
        """Send the DELTAs batched so far: one DELTA_BATCH per member, encoded once for
        the members that get the same changes."""
        self._batch_scheduled = False
        batches, self._batches = self._batches, {}
        self._batch_bytes = 0
        last: tuple[list[Any], Payload] | None = None
        for link, items in batches.items():
            changes = [entry for entry, _ in items]
            if last is not None and len(last[0]) == len(changes) and all(map(operator.is_, last[0], changes)):
                payload = last[1]
            else:
                try:
                    payload = Payload.of(
                        MessageType.DELTA_BATCH, {"changes": changes, "ack": True}, local=False, check=False
                    )
                except FrameError as exc:
                    self.log("error", f"{len(changes)} changes not replicated: {exc}")
                    for _, on_applied in items:
                        if on_applied is not None:
                            on_applied({"result": "error", "error": str(exc)})
                    continue
                last = (changes, payload)
            link.request(
                MessageType.DELTA_BATCH, payload, partial(self._batch_acknowledged, link, items), len(items)
            )

    def _batch_acknowledged(
        self,
        link: PeerLink,
        items: list[tuple[list[Any], Callable[[dict[str, Any]], None] | None]],
        ack: dict[str, Any],
    ) -> None:
        results = ack.get("results")
        if results is None and ack.get("result") not in ("missing", "gap"):
            # One answer for every change, and nothing to repair: the common case.
            for _, on_applied in items:
                if on_applied is not None:
                    on_applied(ack)
            return
        for index, (entry, on_applied) in enumerate(items):
            result = results[index] if results is not None and index < len(results) else ack.get("result")
            if result in ("missing", "gap") and self._repair(link, entry[0], on_applied):
                continue
            if on_applied is not None:
                on_applied(ack)

    def _acknowledged(
        self,
        link: PeerLink,
        session_id: str,
        on_applied: Callable[[dict[str, Any]], None] | None,
        ack: dict[str, Any],
    ) -> None:
        if ack.get("result") in ("missing", "gap") and self._repair(link, session_id, on_applied):
            return
        if on_applied is not None:
            on_applied(ack)

    def _repair(
        self, link: PeerLink, session_id: str, on_applied: Callable[[dict[str, Any]], None] | None
    ) -> bool:
        """Send a member that lacks a session (or some of its changes) all of it; whether sent."""
        records = self._records([session_id])
        if not records:
            return False
        self.counters["repairs"] += 1
        link.request(
            MessageType.ALL_SESSION_DATA,
            {"sessions": records, "chunk": 0, "ack": True},
            on_applied or _ignore,
        )
        return True

    def _replicate_and_wait(
        self,
        session_id: str,
        msg_type: MessageType,
        body: dict[str, Any],
        sync: bool,
        everyone: bool = False,
    ) -> None:
        done = Event()
        self._replicate(session_id, msg_type, body, sync, done.set, everyone)
        done.wait()

    def _ack_timeout_loop(self) -> None:
        while not self.stopped.wait(min(0.1, ACK_TIMEOUT / 10)):
            if not self._waiting:
                continue
            now = time.monotonic()
            still = []
            for waiting in self._waiting:
                if waiting.finished:
                    continue
                if now < waiting.deadline:
                    still.append(waiting)
                    continue
                for member in waiting.members:
                    member.ack_timed_out(now)
                    self.counters["ack_timeouts"] += 1
                    self.log(
                        "warn",
                        f"member {member.name} did not acknowledge {waiting.what} "
                        f"within {ACK_TIMEOUT:g} s; suspecting it",
                    )
                waiting.finish()
            self._waiting = still

    def _records(self, ids: list[str]) -> list[dict[str, Any]]:
        records = self.store.snapshot(time.time(), ids)
        for record in records:
            # Values are replaced in the store, never changed in place, but the dict is.
            record["attributes"] = dict(record["attributes"])
        return records

    def _pull(self, ids: list[str]) -> None:
        results = []
        for member in self.membership.connected():
            result = AsyncResult()
            member.outbound.request(MessageType.PULL, {"ids": ids}, result.set)
            results.append(result)
        self.counters["pulls"] += 1
        wanted = set(ids)
        for result in gevent.iwait(results, timeout=ACK_TIMEOUT):
            answer = result.get()
            if answer.get("sessions"):
                try:
                    self._load(answer["sessions"], "pulled")
                except ValueError:
                    continue
            if all(sid in self.store for sid in wanted):
                return

    def _load(self, records: list[Any], what: str) -> int:
        try:
            changed = self.store.load_snapshot(records, time.time())
        except ValueError as exc:
            self.log("error", f"{what} sessions rejected: {exc}")
            raise
        self.counters[f"sessions_{what}"] += len(records)
        return changed

    # -- access announcements and expiry --------------------------------------------------------

    def _note_access(self, session_id: str, max_inactive: int, now: float) -> None:
        if not self.settings.clustered:
            return
        window = max(self._announce_interval, max_inactive / 4)
        if now - self._announced.get(session_id, 0.0) >= window:
            self._to_announce.add(session_id)

    def _announce_loop(self) -> None:
        while not self.stopped.wait(self._announce_interval):
            if not self._to_announce:
                continue
            ids, self._to_announce = sorted(self._to_announce), set()
            now = time.time()
            for session_id in ids:
                self._announced[session_id] = now
            self._broadcast(MessageType.ACCESSED, ids)

    def _broadcast(self, msg_type: MessageType, ids: list[str]) -> None:
        self._send_batches()  # the changes before it go first
        links = [m.outbound for m in self.membership.connected()]
        for start in range(0, len(ids), IDS_PER_FRAME):
            chunk = ids[start : start + IDS_PER_FRAME]
            for link in links:
                link.send(msg_type, {"ids": chunk})

    def sweep_interval(self) -> float:
        """Seconds between expiry sweeps: a quarter of the max inactive time, within 0.25-5 s."""
        max_inactive = self.settings.max_inactive
        return 5.0 if max_inactive <= 0 else min(5.0, max(0.25, max_inactive / 4))

    def _sweep_loop(self) -> None:
        while not self.stopped.wait(self.sweep_interval()):
            self.sweep(time.time())
            self._bytes = self.store.size()
            if self.settings.multicast is not None:
                self._forget_silent()

    def sweep(self, now: float) -> list[str]:
        """Expire idle sessions and tell the members; the ids expired."""
        expired = self.store.expire(now)
        # An announcement older than the longest coalescing window no longer holds one back.
        horizon = now - max(self._announce_interval, self.settings.max_inactive / 4)
        self._announced = {k: t for k, t in self._announced.items() if t > horizon}
        if expired:
            self.counters["expired"] += len(expired)
            if self.settings.clustered:
                self._broadcast(MessageType.EXPIRE, expired)
        return expired

    # -- membership and links ------------------------------------------------------------------

    def _hello(self) -> dict[str, Any]:
        return {
            "cluster": CLUSTER_NAME,
            "address": self.cluster_address,
            "incarnation": self.incarnation,
            "started": self.started_ms,
            "ts": int(time.time() * 1000),
        }

    def _make_link(self, sock: Any, outbound: bool) -> PeerLink:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return PeerLink(
            sock,
            local_id=self.member_id,
            secret=self.settings.secret,
            hello=self._hello(),
            outbound=outbound,
            on_hello=self._on_hello,
            on_frame=self._on_frame,
            on_close=self._on_close,
        )

    def _spawn_connect(self, member: Member) -> None:
        if member.address not in self._connecting:
            self._connecting.add(member.address)
            self._greenlets.spawn(self._connect_loop, member)

    def _connect_loop(self, member: Member) -> None:
        backoff = RECONNECT_MIN
        try:
            while not self.stopped.is_set() and self.membership.get(member.address) is member:
                try:
                    sock = gsocket.create_connection(member.address, timeout=CONNECT_TIMEOUT)
                except OSError as exc:
                    member.last_error = f"connect: {exc.strerror or exc}"
                    member.tried = True
                    self.stopped.wait(backoff)
                    backoff = min(backoff * 2, RECONNECT_MAX)
                    continue
                sock.settimeout(None)
                link = self._make_link(sock, outbound=True)
                link.member = member
                member.outbound = link
                link.start()
                gevent.wait([link.ready, link.closed], count=1)
                member.tried = True
                if link.ready.is_set():
                    self._greenlets.spawn(self._push_primaries, link)
                link.closed.wait()
                if member.outbound is link:
                    member.outbound = None
                backoff = RECONNECT_MIN if link.ready.is_set() else min(backoff * 2, RECONNECT_MAX)
                self.stopped.wait(backoff)
        finally:
            self._connecting.discard(member.address)

    def _accept_peer(self, sock: Any, address: Any) -> None:
        link = self._make_link(sock, outbound=False)
        link.start()
        link.closed.wait()

    def _on_hello(self, link: PeerLink, frame: Frame) -> str | None:
        body = frame.body
        peer_id = frame.sender
        if peer_id == self.member_id:
            return f"it uses this node's SessionRoute {peer_id!r}; every node needs its own"
        try:
            address = parse_address(body["address"])
        except ValueError as exc:
            return f"bad cluster address in HELLO: {exc}"
        if link.outbound:
            member = link.member
        else:
            member = self.membership.get(address)
            if member is None:
                if self.settings.multicast is None:
                    return f"{body['address']} ({peer_id}) is not a ClusterMember of this node"
                member = self.membership.discover(address)
                self._spawn_connect(member)
        other = self.membership.by_id(peer_id)
        if other is not None and other is not member:
            return f"member id {peer_id!r} is already used by {format_address(other.address)}"
        if member.announce(peer_id, body["incarnation"], body["started"]):
            self.log("notice", f"member {peer_id} at {body['address']} restarted")
        member.heard(time.monotonic())
        link.member = member
        if not link.outbound:
            old, member.inbound = member.inbound, link
            if old is not None and old is not link:
                old.close("replaced by a newer connection")
        return None

    def _on_close(self, link: PeerLink, reason: str, error: WireError | None) -> None:
        member = link.member
        direction = "to" if link.outbound else "from"
        peer = f"{member.name} ({link.remote})" if member is not None else link.remote
        if error is not None:
            self.counters["rejected_frames"] += 1
            if member is not None:
                member.last_error = reason
            if isinstance(error, AuthError):
                self.counters["auth_failures"] += 1
                if member is not None:
                    member.auth_failures += 1
            self._log_rejection(
                f"{link.remote.rsplit(':', 1)[0]} {reason}",
                f"cluster connection {direction} {peer} dropped: {reason}",
            )
        elif link.ready.is_set() and not self.stopped.is_set():
            self.log("info", f"cluster connection {direction} {peer} closed: {reason}")
        elif member is not None and not self.stopped.is_set():
            member.last_error = f"{reason} during the handshake"
        if member is not None and member.inbound is link:
            member.inbound = None
        if self._transfer is not None and self._transfer.link is link:
            self._transfer.done.set()

    def _log_rejection(self, key: str, message: str) -> None:
        """Log at most one rejection per *key* per AUTH_LOG_INTERVAL, counting the rest."""
        now = time.monotonic()
        last, suppressed = self._auth_log.get(key, (-AUTH_LOG_INTERVAL, 0))
        if now - last < AUTH_LOG_INTERVAL:
            self._auth_log[key] = (last, suppressed + 1)
            return
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        self.log("error", message + more)
        self._auth_log[key] = (now, 0)

    # -- frames from members -------------------------------------------------------------------

    def _ack(self, link: PeerLink, frame: Frame, result: str, error: str = "") -> None:
        if frame.body.get("ack"):
            link.acknowledge(frame.seq, result, error)

    def _apply(
        self,
        origin: str,
        session_id: str,
        version: int,
        raw_delta: Any,
        now: float,
        length: int | None,
    ) -> tuple[str, str]:
        """Apply a member's change: (result, error) for its acknowledgement."""
        try:
            delta = Delta.from_dict(raw_delta)
        except ValueError as exc:
            return "error", str(exc)
        return self.store.apply_delta(session_id, delta, version, now, origin, length).value, ""

    def _on_frame(self, link: PeerLink, frame: Frame) -> None:
        body = frame.body
        now = time.time()
        msg_type = frame.type
        self.counters[_RECEIVED[msg_type]] += 1
        if msg_type is MessageType.DELTA_BATCH:
            origin = frame.sender
            apply_delta = self.store.apply_delta
            results = []
            error = ""
            for session_id, version, raw_delta in body["changes"]:
                try:
                    delta = Delta.from_dict(raw_delta)
                except ValueError as exc:
                    results.append("error")
                    error = error or str(exc)
                    continue
                results.append(apply_delta(session_id, delta, version, now, origin).value)
            if body.get("ack"):
                failed = [result for result in results if result != "applied"]
                if failed:
                    link.acknowledge(frame.seq, failed[0], error, results)
                else:
                    link.acknowledge(frame.seq, "applied")
        elif msg_type is MessageType.DELTA:
            result, error = self._apply(
                frame.sender, body["id"], body["version"], body["delta"], now, frame.length
            )
            self._ack(link, frame, result, error)
        elif msg_type is MessageType.INVALIDATE:
            self.store.invalidate(body["id"], now)
            self._ack(link, frame, "applied")
        elif msg_type is MessageType.EXPIRE:
            for session_id in body["ids"]:
                self.store.invalidate(session_id, now)
        elif msg_type is MessageType.ACCESSED:
            for session_id in body["ids"]:
                self.store.access(session_id, now, origin=frame.sender)
        elif msg_type is MessageType.CHANGE_SESSION_ID:
            moved = self.store.change_id(body["old"], body["new"], now, origin=frame.sender)
            self._ack(link, frame, "applied" if moved else "missing")
        elif msg_type is MessageType.PULL:
            link.send(
                MessageType.ALL_SESSION_DATA,
                {"sessions": self._records(body["ids"]), "chunk": 0, "re": frame.seq},
            )
        elif msg_type is MessageType.GET_ALL_SESSIONS:
            self._greenlets.spawn(self._send_all, link)
        elif msg_type is MessageType.ALL_SESSION_DATA:
            transfer = self._transfer
            what = "transferred" if transfer is not None and transfer.link is link else "pushed"
            try:
                self._load(body["sessions"], what)
            except ValueError as exc:
                self._ack(link, frame, "error", str(exc))
                return
            if what == "transferred":
                transfer.sessions += len(body["sessions"])
                transfer.chunks += 1
            self._ack(link, frame, "applied")
        elif msg_type is MessageType.TRANSFER_COMPLETE:
            transfer = self._transfer
            if transfer is not None and transfer.link is link:
                transfer.complete = body
                transfer.done.set()
        else:
            self.log("warn", f"unexpected {msg_type.name} from {frame.sender}")

    # -- state transfer ------------------------------------------------------------------------

    def _stream(self, link: PeerLink, ids: list[str], what: str) -> tuple[int, int] | None:
        """Send the sessions *ids* in acknowledged chunks; (chunks, sessions), None if cut off."""

        def records() -> Iterator[dict[str, Any]]:
            for session_id in ids:
                found = self._records([session_id])
                if found:
                    yield found[0]

        chunks = sessions = 0
        for chunk in transfer_chunks(records()):
            result = AsyncResult()
            link.request(
                MessageType.ALL_SESSION_DATA,
                {"sessions": chunk, "chunk": chunks, "ack": True},
                result.set,
            )
            answer = result.get(timeout=self.settings.state_transfer_timeout)
            if answer.get("result") != "applied":
                self.log(
                    "warn",
                    f"{what} to {link.peer_id} stopped at chunk {chunks}: "
                    f"{answer.get('error') or answer.get('result')}",
                )
                return None
            chunks += 1
            sessions += len(chunk)
        return chunks, sessions

    def _send_all(self, link: PeerLink) -> None:
        started = time.monotonic()
        sent = self._stream(link, self.store.ids(), "state transfer")
        if sent is None:
            return
        chunks, sessions = sent
        link.send(MessageType.TRANSFER_COMPLETE, {"chunks": chunks, "sessions": sessions})
        self.log(
            "info",
            f"sent {sessions} sessions to {link.peer_id} in {chunks} chunks "
            f"({time.monotonic() - started:.2f} s)",
        )

    def _push_primaries(self, link: PeerLink) -> None:
        """Send a member whose link just came up the sessions this node is primary for.

        A member that was cut off for a moment (or restarted) missed the changes
        made meanwhile; versions make the sessions it already has harmless.
        """
        ids = [sid for sid in self.store.ids() if self.store.is_primary(sid)]
        if ids and self._stream(link, ids, "catch-up") is not None:
            self.counters["catch_up_pushes"] += 1

    def _state_transfer(self) -> None:
        begun = time.monotonic()
        deadline = begun + self.settings.state_transfer_timeout
        settle = min(deadline, begun + SETTLE_TIME)
        if self.settings.multicast is not None:
            self.stopped.wait(min(MULTICAST_SETTLE, max(0.0, settle - time.monotonic())))
        while not self.membership.settled() and time.monotonic() < settle:
            self.stopped.wait(0.02)
        tried: set[str] = set()
        outcome = None
        while outcome is None and time.monotonic() < deadline:
            donors = [m for m in self.membership.donors(time.monotonic()) if m.id not in tried]
            if not donors:
                break
            donor = donors[0]
            tried.add(donor.id)
            transfer = self._transfer = _Transfer(donor.outbound)
            self.transfer = {"state": "running", "donor": donor.id}
            donor.outbound.send(MessageType.GET_ALL_SESSIONS, {})
            transfer.done.wait(max(0.0, deadline - time.monotonic()))
            if transfer.complete is not None:
                outcome = transfer
            else:
                self.log(
                    "warn",
                    f"state transfer from {donor.name} failed after {transfer.sessions} sessions"
                    + ("" if transfer.done.is_set() else " (ClusterStateTransferTimeout)")
                    + "; trying the next member",
                )
        self._transfer = None
        seconds = round(time.monotonic() - begun, 3)
        if outcome is not None:
            self.transfer = {
                "state": "done",
                "donor": outcome.link.peer_id,
                "sessions": outcome.sessions,
                "chunks": outcome.chunks,
                "seconds": seconds,
            }
            self.log(
                "notice",
                f"state transfer from {outcome.link.peer_id}: {outcome.sessions} sessions "
                f"in {seconds:.2f} s; serving sessions",
            )
        elif tried:
            self.transfer = {"state": "incomplete", "seconds": seconds}
            self.log(
                "error",
                f"state transfer did not complete within {self.settings.state_transfer_timeout:.0f} s "
                f"(tried {', '.join(sorted(tried))}); serving with {len(self.store)} sessions",
            )
        else:
            self.transfer = {"state": "no member to ask", "seconds": seconds}
            self.log("notice", "no other member is up: starting with no sessions")
        self.ready.set()

    # -- multicast -----------------------------------------------------------------------------

    def _start_multicast(self) -> None:
        self._multicast = MulticastService(
            self.settings.multicast,
            self.settings.listen[0],
            local_id=self.member_id,
            secret=self.settings.secret,
            cluster=CLUSTER_NAME,
            address=self.cluster_address,
            incarnation=self.incarnation,
            started=self.started_ms,
            on_heartbeat=self._on_heartbeat,
            on_reject=lambda source, exc: self._log_rejection(
                source, f"multicast heartbeat from {source} dropped: {exc}"
            ),
        )
        self._multicast.start()

    def _on_heartbeat(self, frame: Frame) -> None:
        try:
            address = parse_address(frame.body["address"])
        except ValueError:
            return
        if address == self.settings.listen or frame.sender == self.member_id:
            return
        other = self.membership.by_id(frame.sender)
        member = self.membership.discover(address)
        if other is not None and other is not member:
            return
        new = member.id is None
        if member.announce(frame.sender, frame.body["incarnation"], frame.body["started"]):
            self.log("notice", f"member {frame.sender} at {frame.body['address']} restarted")
        member.heard(time.monotonic())
        if new:
            self.log("notice", f"member {frame.sender} at {frame.body['address']} discovered")
        self._spawn_connect(member)

    def _forget_silent(self) -> None:
        for member in self.membership.forget_silent(time.monotonic()):
            self.log("notice", f"member {member.name} dropped: no heartbeat for {member.drop_time:.0f} s")
            for link in (member.outbound, member.inbound):
                if link is not None:
                    link.close("member dropped")

    # -- status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What the status page shows about this node's sessions and members."""
        now = time.monotonic()
        lags = [s for m in self.membership if m.outbound is not None for s in m.outbound.lag.samples()]
        return {
            "member": self.member_id,
            "route": self.settings.route,
            "ready": self.ready.is_set(),
            "replication": self.settings.replication,
            "mode": "sync" if self.settings.sync else "async",
            "listen": self.cluster_address,
            "multicast": format_address(self.settings.multicast) if self.settings.multicast else None,
            "incarnation": self.incarnation,
            "started": self.started_ms / 1000,
            "pid": os.getpid(),
            "transfer": self.transfer,
            # Measuring the bytes encodes changed sessions: the sweep does it, not each status.
            "sessions": {**self.store.counts(), "bytes": self._bytes},
            "members": self.membership.status(now),
            "counters": dict(self.counters),
            "lag_p50_ms": percentile(lags, 50),
            "lag_p99_ms": percentile(lags, 99),
        }


def _answers(path: str) -> bool:
    """Whether something accepts connections on the Unix socket ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def run_agent(settings: ClusterSettings, log: Log) -> None:
    """The body of the agent process the master forks: serve until SIGTERM or the master is gone."""
    gevent.reinit()
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGWINCH, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    if settings.agent_nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, settings.agent_nice)
        except OSError as exc:
            log("warn", f"SessionAgentNice {settings.agent_nice}: {exc.strerror} (a nice value below "
                f"the master's needs root or CAP_SYS_NICE); the agent runs at nice {os.getpriority(os.PRIO_PROCESS, 0)}")
    agent = SessionAgent(settings, log)
    gevent.signal_handler(signal.SIGTERM, agent.stop)
    parent = os.getppid()

    def watch_parent() -> None:
        while not agent.stopped.wait(1.0):
            if os.getppid() != parent:
                log("error", "the master process is gone; session agent stopping")
                agent.stop()

    gevent.spawn(watch_parent)
    try:
        agent.serve_forever()
    except OSError as exc:
        log("emerg", f"session agent cannot start: {exc}")
        raise SystemExit(1) from None
    log("notice", f"session agent {agent.member_id} stopped")
