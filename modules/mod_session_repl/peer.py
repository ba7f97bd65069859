"""One authenticated TCP connection between two session agents.

Each agent opens a connection to every member it knows (its *outbound* link,
on which it sends its own changes and requests) and accepts theirs (*inbound*
links, on which it applies their changes and answers).  A link is the same
machinery in both directions: both sides send a HELLO with a fresh nonce, every
later frame is bound to the peer's nonce and tagged with the cluster secret
(see :mod:`.wire`), and a frame that fails any check closes the link unread.

Frames are encoded as they are sent and leave in order, those of one turn of
the event loop together in one send (see :class:`pyhttpd.batch_send.BatchSender`);
only frames sent before the peer's HELLO arrives wait in a queue, since they
must name its nonce.  A slow peer only slows its own link.  A request may wait
for its answer: an ACK names the request's sequence number in ``seq`` (and,
answering a batch, the others in ``also``: the frames applied from one receive
are acknowledged together), an ALL_SESSION_DATA answering a PULL in ``re``.
The round trip of each acknowledged DELTA or DELTA_BATCH is the replication lag.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from gevent.event import Event

from pyhttpd.batch_send import BatchSender

from .wire import (
    DEFAULT_MAX_FRAME,
    AuthError,
    Frame,
    FrameReader,
    FrameWriter,
    MessageType,
    Payload,
    WireError,
)

PING_INTERVAL = 1.0
SILENCE_LIMIT = 5.0  # a link that hears nothing for this long is closed
HELLO_SKEW = 60.0  # seconds a HELLO's timestamp may differ from this node's clock
LAG_SAMPLES = 2048

AckCallback = Callable[[dict[str, Any]], None]
LOST = {"result": "lost"}


def percentile(samples: Iterable[float], p: float) -> float | None:
    """The *p*-th percentile (0-100, nearest rank) of *samples*, None if there are none."""
    ordered = sorted(samples)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


class LagTracker:
    """The recent replication round trips of one link, in milliseconds."""

    def __init__(self, size: int = LAG_SAMPLES) -> None:
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, ms: float) -> None:
        """Record one round trip."""
        self._samples.append(ms)

    def samples(self) -> list[float]:
        """The recent round trips, oldest first."""
        return list(self._samples)

    def percentile(self, p: float) -> float | None:
        """The *p*-th percentile (0-100) of the recent round trips, None without any."""
        return percentile(self._samples, p)

    def __len__(self) -> int:
        return len(self._samples)


class PeerLink:
    """One connection to another agent; see the module docstring.

    *hello* is this side's HELLO body without its nonce.  *on_hello* vets the
    peer's HELLO and returns a reason to refuse it, or None; *on_frame* gets every
    other frame that is not an answer; *on_close* hears why the link ended and,
    for frames that failed the wire checks, the error.
    """

    def __init__(
        self,
        sock: Any,
        *,
        local_id: str,
        secret: bytes,
        hello: dict[str, Any],
        outbound: bool,
        on_hello: Callable[[PeerLink, Frame], str | None],
        on_frame: Callable[[PeerLink, Frame], None],
        on_close: Callable[[PeerLink, str, WireError | None], None],
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.sock = sock
        self._sender = BatchSender(sock, self._send_failed)
        self.outbound = outbound
        try:
            host, port = sock.getpeername()[:2]
            self.remote = f"{host}:{port}"
        except OSError:
            self.remote = "?"
        self.nonce = secrets.token_bytes(16)
        self._hello = {**hello, "nonce": self.nonce.hex()}
        self._reader = FrameReader(secret, nonce=self.nonce, max_frame=max_frame)
        self._writer = FrameWriter(local_id, secret, max_frame=max_frame)
        self._on_hello = on_hello
        self._on_frame = on_frame
        self._on_close = on_close
        # Frames sent before the peer's HELLO, written when it arrives.
        self._queue: deque[tuple[MessageType, dict[str, Any] | Payload, AckCallback | None, int]] = deque()
        self._acks: list[int] = []  # frames applied, to acknowledge together
        self._pending: dict[int, tuple[AckCallback, float, MessageType, int]] = {}
        self._unanswered = 0  # changes in the pending requests
        self.ready = Event()  # set when the peer's HELLO was accepted
        self.closed = Event()
        self.peer: Frame | None = None  # the peer's HELLO
        self.member: Any = None  # set by the agent to the Member this link belongs to
        self.lag = LagTracker()
        self.last_received = time.monotonic()
        self._last_sent = 0.0
        self.close_reason = ""
        self._greenlets: list[gevent.Greenlet] = []

    @property
    def peer_id(self) -> str | None:
        """The member id the peer announced, once its HELLO arrived."""
        return self.peer.sender if self.peer is not None else None

    @property
    def queue_length(self) -> int:
        """Frames waiting for the peer's HELLO to be written."""
        return len(self._queue)

    @property
    def unanswered(self) -> int:
        """Changes sent and not answered yet (a request counts as many as it carries)."""
        return self._unanswered

    def oldest_unanswered(self, now: float) -> float:
        """Seconds the oldest unanswered request has waited (0 without any)."""
        if not self._pending:
            return 0.0
        return now - min(entry[1] for entry in self._pending.values())

    def start(self) -> None:
        """Send the HELLO and start the reader, writer and pinger."""
        try:
            self.sock.sendall(self._writer.encode(MessageType.HELLO, self._hello))
        except OSError as exc:
            self.close(f"send failed: {exc.strerror or exc}")
            return
        self._last_sent = time.monotonic()
        self._greenlets = [gevent.spawn(self._read_loop), gevent.spawn(self._ping_loop)]

    def send(self, msg_type: MessageType, body: dict[str, Any] | Payload) -> None:
        """Send a frame that needs no answer (*body* may be an encoded Payload)."""
        if not self.closed.is_set():
            self._write(msg_type, body, None)

    def request(
        self,
        msg_type: MessageType,
        body: dict[str, Any] | Payload,
        callback: AckCallback,
        changes: int = 1,
    ) -> None:
        """Send a frame whose answer goes to *callback* (``{"result": "lost"}`` if the link
        ends first); it counts as *changes* in :attr:`unanswered`."""
        if self.closed.is_set():
            callback(LOST)
            return
        self._write(msg_type, body, callback, changes)

    def _write(
        self,
        msg_type: MessageType,
        body: dict[str, Any] | Payload,
        callback: AckCallback | None,
        changes: int = 1,
    ) -> None:
        if not self.ready.is_set():
            self._queue.append((msg_type, body, callback, changes))
            return
        try:
            if isinstance(body, Payload):
                data = self._writer.encode_payload(msg_type, body)
            else:  # built by the agent from checked parts; the peer checks it anyway
                data = self._writer.encode(msg_type, body, check=False)
        except WireError as exc:
            if callback is not None:
                callback({"result": "error", "error": str(exc)})
            return
        now = time.monotonic()
        if callback is not None:
            self._pending[self._writer.seq] = (callback, now, msg_type, changes)
            self._unanswered += changes
        self._sender.send(data)
        self._last_sent = now

    def _send_failed(self, exc: OSError) -> None:
        self.close(f"send failed: {exc.strerror or exc}")

    def acknowledge(
        self, seq: int, result: str, error: str = "", results: list[str] | None = None
    ) -> None:
        """Answer the peer's frame *seq* (*results*: one per change of a DELTA_BATCH, when
        they differ); plain "applied" answers leave together, one ACK per batch of frames
        received."""
        if result == "applied" and not error and results is None:
            self._acks.append(seq)
            return
        body: dict[str, Any] = {"seq": seq, "result": result}
        if error:
            body["error"] = error
        if results is not None:
            body["results"] = results
        self.send(MessageType.ACK, body)

    def _flush_acks(self) -> None:
        acks, self._acks = self._acks, []
        if acks:
            body: dict[str, Any] = {"seq": acks[0], "result": "applied"}
            if len(acks) > 1:
                body["also"] = acks[1:]
            self.send(MessageType.ACK, body)

    def close(self, reason: str, error: WireError | None = None) -> None:
        """End the link; unanswered requests are answered with ``lost``."""
        if self.closed.is_set():
            return
        self.closed.set()
        self.close_reason = reason
        try:
            self.sock.close()
        except OSError:
            pass
        pending, self._pending = self._pending, {}
        self._unanswered = 0
        queued, self._queue = self._queue, deque()
        for callback, *_ in pending.values():
            callback(LOST)
        for _, _, callback, _ in queued:
            if callback is not None:
                callback(LOST)
        current = gevent.getcurrent()
        for greenlet in self._greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)
        self._on_close(self, reason, error)

    # -- greenlets ---------------------------------------------------------------------------

    def _read_loop(self) -> None:
        while not self.closed.is_set():
            try:
                data = self.sock.recv(65536)
            except OSError as exc:
                self.close(f"receive failed: {exc.strerror or exc}")
                return
            if not data:
                self.close("closed by the peer")
                return
            try:
                frames = self._reader.feed(data)
            except WireError as exc:
                self.close(str(exc), exc)
                return
            self.last_received = time.monotonic()
            for frame in frames:
                if self.closed.is_set():
                    return
                self._dispatch(frame)
            self._flush_acks()

    def _dispatch(self, frame: Frame) -> None:
        msg_type = frame.type
        if msg_type is MessageType.HELLO:
            problem = self._check_hello(frame)
            if problem is not None:
                self.close(problem, AuthError(problem))
                return
            self.peer = frame
            self._writer.peer_nonce = bytes.fromhex(frame.body["nonce"])
            self.ready.set()
            queued, self._queue = self._queue, deque()
            for msg_type, body, callback, changes in queued:
                self._write(msg_type, body, callback, changes)
        elif msg_type is MessageType.ACK:
            self._answer(frame.body["seq"], frame.body)
            for seq in frame.body.get("also", ()):
                self._answer(seq, frame.body)
        elif msg_type is MessageType.ALL_SESSION_DATA and "re" in frame.body:
            self._answer(frame.body["re"], frame.body)
        elif msg_type is not MessageType.PING:
            self._on_frame(self, frame)

    def _check_hello(self, frame: Frame) -> str | None:
        body = frame.body
        if body["cluster"] != self._hello["cluster"]:
            return f"member of cluster {body['cluster']!r}, not {self._hello['cluster']!r}"
        skew = abs(time.time() * 1000 - body["ts"]) / 1000
        if skew > HELLO_SKEW:
            return f"HELLO timestamp {skew:.0f} s off this node's clock"
        return self._on_hello(self, frame)

    def _answer(self, seq: int, body: dict[str, Any]) -> None:
        entry = self._pending.pop(seq, None)
        if entry is None:
            return
        callback, sent, msg_type, changes = entry
        self._unanswered -= changes
        if msg_type is MessageType.DELTA_BATCH or msg_type is MessageType.DELTA:
            self.lag.add((time.monotonic() - sent) * 1000)
        callback(body)

    def _ping_loop(self) -> None:
        while not self.closed.is_set():
            gevent.sleep(PING_INTERVAL / 2)
            now = time.monotonic()
            if now - self.last_received > SILENCE_LIMIT:
                self.close(f"nothing heard for {SILENCE_LIMIT:.0f} s")
                return
            if self.ready.is_set() and now - self._last_sent >= PING_INTERVAL:
                self.send(MessageType.PING, {"ts": int(time.time() * 1000)})
