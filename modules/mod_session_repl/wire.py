"""The session replication wire format: frames in, bytes out; bytes in, frames out.

Two protocols share the framing.  The cluster protocol runs between the
session agents of different nodes over TCP; every frame carries an HMAC-SHA256
tag made with the cluster secret.  The local protocol runs between a child and
its node's agent over a Unix socket that only the server's user can open
(mode 0600), so its frames carry no tag.  Nothing here touches sockets or clocks.

Frame layout, big-endian::

    magic   4  b"PYSR"
    version 1  1
    type    1  MessageType
    flags   1  bit 0: an HMAC tag follows (cluster frames)
    slen    1  length of the sender id
    seq     8  per connection, strictly increasing from 1
    link    16 the receiver's HELLO nonce (zeros in HELLO, HEARTBEAT and local frames)
    length  4  payload length, at most max_frame
    sender  slen bytes, ASCII member id
    payload length bytes, a UTF-8 JSON object
    tag     32 HMAC-SHA256 over everything before it, keyed with the cluster secret

The tag is checked before the payload is decoded, and the payload is decoded
with :mod:`json` only: nothing a peer sends can run code.  Lengths are checked
against their limits as soon as the fixed header is in, before the rest of the
frame is buffered.

Replay.  Each side of a cluster connection opens with a HELLO holding a fresh
random nonce; every later frame it sends names the peer's nonce in ``link``.  A
reader created with its own nonce rejects frames naming any other (frames
recorded on another connection) and any sequence number not above the last
(frames repeated on this one).  The HELLO itself carries a timestamp for the
agent to check.  Multicast HEARTBEATs are single datagrams, read each with a
fresh reader without a nonce; they only announce members (checked by timestamp)
and never carry session data.

Payloads are checked against a schema per message type: required and optional
top-level fields with their JSON types.  Deltas and session records inside them
are plain JSON here; :meth:`Delta.from_dict <modules.mod_session_repl.session.Delta.from_dict>`
and :meth:`StoredSession.from_dict <modules.mod_session_repl.store.StoredSession.from_dict>`
check them.
"""

from __future__ import annotations

import enum
import hmac
import json
import re
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .session_id import is_valid_session_id

MAGIC = b"PYSR"
VERSION = 1
FLAG_AUTH = 0x01
TAG_LEN = 32
NONCE_LEN = 16
MIN_SECRET_LEN = 32
MAX_SENDER_LEN = 64
DEFAULT_MAX_FRAME = 1 << 20
TRANSFER_CHUNK_SESSIONS = 1000  # Tomcat's sendAllSessionsSize

_HEADER = struct.Struct(">4sBBBBQ16sI")
HEADER_LEN = _HEADER.size
_NO_LINK = bytes(NONCE_LEN)
_MEMBER_ID = re.compile(rf"[0-9A-Za-z._:-]{{1,{MAX_SENDER_LEN}}}")


class WireError(ValueError):
    """A frame that cannot be accepted; the connection it came on must be closed."""


class FrameError(WireError):
    """Malformed framing or payload: bad magic, version, type, size, JSON or schema."""


class AuthError(WireError):
    """A frame whose HMAC tag is missing or wrong; its payload was not looked at."""


class ReplayError(AuthError):
    """An authentic frame recorded elsewhere or earlier: wrong link or old sequence number."""


class MessageType(enum.IntEnum):
    """Frame types.  Below 64: cluster protocol; from 64: the local protocol only."""

    HELLO = 1
    PING = 2
    DELTA = 3
    ACK = 4
    INVALIDATE = 5
    EXPIRE = 6
    ACCESSED = 7
    GET_ALL_SESSIONS = 8
    ALL_SESSION_DATA = 9
    TRANSFER_COMPLETE = 10
    CHANGE_SESSION_ID = 11
    PULL = 12
    HEARTBEAT = 13
    DELTA_BATCH = 14
    GET = 64
    CREATE = 65
    COMMIT = 66
    STATUS = 67
    REPLY = 68


_TYPES = {int(t): t for t in MessageType}  # a dict lookup is cheaper than MessageType(n)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its type, sequence number, sender member id, JSON body and the
    length of the payload it was decoded from."""

    type: MessageType
    seq: int
    sender: str
    body: dict[str, Any]
    length: int = 0


_Field = tuple[Callable[[object], bool], str]


def _optional(field: _Field) -> _Field:
    check, what = field
    return (lambda value: value is None or check(value)), f"{what} or null"


_STR: _Field = (lambda v: isinstance(v, str), "a string")
_COUNT: _Field = (lambda v: type(v) is int and v >= 0, "a non-negative integer")
_INT: _Field = (lambda v: type(v) is int, "an integer")
_BOOL: _Field = (lambda v: type(v) is bool, "a boolean")
_OBJECT: _Field = (lambda v: isinstance(v, dict), "an object")
_SESSION_ID: _Field = (is_valid_session_id, "a session id")
_SESSION_IDS: _Field = (
    lambda v: isinstance(v, list) and all(is_valid_session_id(x) for x in v),
    "a list of session ids",
)
_RECORDS: _Field = (
    lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
    "a list of session records",
)
_CHANGES: _Field = (
    lambda v: isinstance(v, list)
    and all(
        isinstance(x, list)
        and len(x) == 3
        and is_valid_session_id(x[0])
        and type(x[1]) is int
        and x[1] >= 0
        and isinstance(x[2], dict)
        for x in v
    ),
    "a list of [session id, version, delta]",
)
_NONCE_HEX = re.compile(rf"[0-9a-f]{{{2 * NONCE_LEN}}}")
_NONCE: _Field = (
    lambda v: isinstance(v, str) and _NONCE_HEX.fullmatch(v) is not None,
    f"{NONCE_LEN} bytes in lower-case hex",
)

# Per message type: (required fields, optional fields).
_Schema = tuple[dict[str, _Field], dict[str, _Field]]
_CLUSTER: dict[MessageType, _Schema] = {
    # The member id is the frame's sender; started (ms since the epoch) orders
    # members oldest first, incarnation tells a restarted agent from its past life.
    MessageType.HELLO: (
        {
            "cluster": _STR,
            "address": _STR,
            "incarnation": _COUNT,
            "started": _COUNT,
            "nonce": _NONCE,
            "ts": _COUNT,
        },
        {},
    ),
    MessageType.PING: ({}, {"ts": _COUNT}),
    # "ack": true asks for an ACK once applied; the ACK's "seq" is that of the frame it answers.
    MessageType.DELTA: ({"id": _SESSION_ID, "version": _COUNT, "delta": _OBJECT}, {"ack": _BOOL}),
    # The DELTAs of one turn of the sender's event loop, [id, version, delta] each, in order.
    MessageType.DELTA_BATCH: ({"changes": _CHANGES}, {"ack": _BOOL}),
    # "also" lists more frames applied: one ACK answers a batch of frames.  "results"
    # answers a DELTA_BATCH change by change when they were not all applied.
    MessageType.ACK: (
        {"seq": _COUNT},
        {
            "result": _STR,
            "error": _STR,
            "also": (
                lambda v: isinstance(v, list) and all(type(x) is int and x >= 0 for x in v),
                "a list of sequence numbers",
            ),
            "results": (
                lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                "a list of strings",
            ),
        },
    ),
    MessageType.INVALIDATE: ({"id": _SESSION_ID}, {"ack": _BOOL}),
    MessageType.EXPIRE: ({"ids": _SESSION_IDS}, {}),
    MessageType.ACCESSED: ({"ids": _SESSION_IDS}, {}),
    MessageType.GET_ALL_SESSIONS: ({}, {}),
    # "re" names the PULL this answers; without it the chunk is part of a state transfer.
    MessageType.ALL_SESSION_DATA: (
        {"sessions": _RECORDS, "chunk": _COUNT},
        {"ack": _BOOL, "re": _COUNT},
    ),
    MessageType.TRANSFER_COMPLETE: ({"chunks": _COUNT, "sessions": _COUNT}, {}),
    MessageType.CHANGE_SESSION_ID: ({"old": _SESSION_ID, "new": _SESSION_ID}, {"ack": _BOOL}),
    MessageType.PULL: ({"ids": _SESSION_IDS}, {}),
    # A multicast datagram announcing a member; like HELLO it is bound to no connection.
    MessageType.HEARTBEAT: (
        {
            "cluster": _STR,
            "address": _STR,
            "incarnation": _COUNT,
            "started": _COUNT,
            "ts": _COUNT,
        },
        {},
    ),
}
_UNBOUND = frozenset({MessageType.HELLO, MessageType.HEARTBEAT})
# Requests from a child; the agent answers each with a REPLY whose "re" is the request's seq.
_LOCAL: dict[MessageType, _Schema] = {
    MessageType.GET: ({"id": _SESSION_ID}, {"known_version": _optional(_COUNT)}),
    MessageType.CREATE: ({"id": _SESSION_ID}, {"max_inactive": _INT}),
    MessageType.COMMIT: ({"id": _SESSION_ID, "base": _COUNT, "delta": _OBJECT}, {"sync": _BOOL}),
    MessageType.INVALIDATE: ({"id": _SESSION_ID}, {"sync": _BOOL}),
    MessageType.CHANGE_SESSION_ID: ({"old": _SESSION_ID, "new": _SESSION_ID}, {}),
    MessageType.STATUS: ({}, {}),
    MessageType.REPLY: (
        {"re": _COUNT, "ok": _BOOL},
        {
            "error": _STR,
            "version": _COUNT,
            "session": _optional(_OBJECT),
            "unchanged": _BOOL,
            "status": _OBJECT,
        },
    ),
}


def _schemas(local: bool) -> dict[MessageType, _Schema]:
    return _LOCAL if local else _CLUSTER


def check_body(msg_type: MessageType, body: object, *, local: bool) -> None:
    """Raise FrameError unless *body* fits the schema of *msg_type* in that protocol."""
    protocol = "local" if local else "cluster"
    schema = _schemas(local).get(msg_type)
    if schema is None:
        raise FrameError(f"{msg_type!r} is not a {protocol} message")
    name = msg_type.name
    if not isinstance(body, dict):
        raise FrameError(f"{name}: payload is not a JSON object")
    required, optional = schema
    for key, (check, what) in required.items():
        if key not in body:
            raise FrameError(f"{name}: field {key!r} is missing")
        if not check(body[key]):
            raise FrameError(f"{name}: field {key!r} must be {what}")
    for key, value in body.items():
        if key in required:
            continue
        if key not in optional:
            raise FrameError(f"{name}: unexpected field {key!r:.40}")
        check, what = optional[key]
        if not check(value):
            raise FrameError(f"{name}: field {key!r} must be {what}")


def _check_secret(secret: bytes | None) -> None:
    if secret is not None and len(secret) < MIN_SECRET_LEN:
        raise ValueError(f"the cluster secret must be at least {MIN_SECRET_LEN} bytes")


def _tag(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Made once: json.dumps and json.loads build a new encoder or decoder on every call
# that passes options.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def compact_json(value: Any) -> bytes:
    """*value* as compact UTF-8 JSON, as frames carry it (ValueError for NaN or infinity)."""
    return _ENCODER.encode(value).encode()


class FrameWriter:
    """Encodes frames from one sender on one connection, numbering them.

    *secret* makes cluster frames (tagged); None makes local frames.  After the
    peer's HELLO arrives, set :attr:`peer_nonce` to its nonce: cluster frames
    other than HELLO need it.
    """

    def __init__(
        self, sender: str, secret: bytes | None, *, max_frame: int = DEFAULT_MAX_FRAME
    ) -> None:
        _check_secret(secret)
        local = secret is None
        if not (local and sender == "") and _MEMBER_ID.fullmatch(sender) is None:
            raise ValueError(
                f"member id {sender!r} must be 1 to {MAX_SENDER_LEN} letters, digits or ._:-"
            )
        self.sender = sender
        self._sender = sender.encode("ascii")
        self._secret = secret
        self.max_frame = max_frame
        self.peer_nonce: bytes | None = None
        self.seq = 0

    def encode(self, msg_type: MessageType, body: dict[str, Any], *, check: bool = True) -> bytes:
        """The bytes of one frame; FrameError if *body* breaks the schema or the size limit.

        ``check=False`` skips the schema for a body this code built from checked parts
        (the receiver checks every frame anyway).
        """
        payload = Payload.of(msg_type, body, local=self._secret is None, check=check)
        return self.encode_payload(msg_type, payload)

    def encode_payload(self, msg_type: MessageType, payload: Payload) -> bytes:
        """The bytes of one frame around a :class:`Payload` made once for several connections."""
        local = self._secret is None
        if payload.type is not msg_type or payload.local is not local:
            raise FrameError(f"a {payload.type.name} payload cannot make a {msg_type.name} frame here")
        if local or msg_type in _UNBOUND:
            link = _NO_LINK
        elif self.peer_nonce is None:
            raise FrameError(f"{msg_type.name} before the peer's HELLO: no nonce to bind it to")
        else:
            link = self.peer_nonce
        data = payload.data
        if len(data) > self.max_frame:
            raise FrameError(
                f"{msg_type.name}: payload of {len(data)} bytes exceeds the limit of {self.max_frame}"
            )
        self.seq += 1
        header = _HEADER.pack(
            MAGIC,
            VERSION,
            msg_type,
            0 if local else FLAG_AUTH,
            len(self._sender),
            self.seq,
            link,
            len(data),
        )
        frame = header + self._sender + data
        return frame if self._secret is None else frame + _tag(self._secret, frame)


@dataclass(frozen=True)
class Payload:
    """A frame's body checked against its schema and encoded, ready for any connection.

    A change sent to every member is encoded once and framed (numbered, bound,
    tagged) per connection.
    """

    type: MessageType
    local: bool
    data: bytes

    @classmethod
    def of(
        cls, msg_type: MessageType, body: dict[str, Any], *, local: bool, check: bool = True
    ) -> Payload:
        """*body* checked (unless *check* is False) and encoded; FrameError if it breaks the
        schema or is not JSON."""
        if check:
            check_body(msg_type, body, local=local)
        try:
            data = compact_json(body)
        except (TypeError, ValueError) as exc:
            raise FrameError(f"{msg_type.name}: payload is not JSON: {exc}") from None
        return cls(msg_type, local, data)


class FrameReader:
    """Decodes the frames arriving on one connection, incrementally.

    *secret* (plus *previous_secret* during a key rotation) expects tagged
    cluster frames; None expects local frames.  *nonce* is the one this side
    sent in its HELLO: when set, the first frame must be the peer's HELLO and
    every later one must name the nonce.  After any error the reader stays
    failed, since the stream can no longer be trusted.
    """

    def __init__(
        self,
        secret: bytes | None,
        *,
        previous_secret: bytes | None = None,
        nonce: bytes | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        _check_secret(secret)
        _check_secret(previous_secret)
        if nonce is not None and len(nonce) != NONCE_LEN:
            raise ValueError(f"nonce must be {NONCE_LEN} bytes")
        self._keys = [key for key in (secret, previous_secret) if key is not None]
        self._local = secret is None
        self._nonce = nonce
        self.max_frame = max_frame
        self._schemas = _schemas(self._local)
        self._buffer = bytearray()
        self._wanted = 0  # bytes of the frame at the start of the buffer, once its header is checked
        self._error: WireError | None = None
        self.last_seq = 0
        self.sender: str | None = None
        self._raw_sender: bytes | None = None
        self.hello_seen = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes and return the frames they complete, in order."""
        if self._error is not None:
            raise self._error
        buf = self._buffer
        if buf:
            buf += data
            if len(buf) < self._wanted:  # a frame whose header was checked, still incomplete
                return []
            data = bytes(buf)
            buf.clear()
        elif type(data) is not bytes:
            data = bytes(data)
        frames: list[Frame] = []
        pos = 0
        try:
            while True:
                end = self._frame_at(data, pos, frames)
                if end == pos:
                    break
                pos = end
        except WireError as exc:
            self._error = exc
            buf.clear()
            raise
        if pos < len(data):
            buf += memoryview(data)[pos:]
        return frames

    def _frame_at(self, data: bytes, pos: int, frames: list[Frame]) -> int:
        """Decode the frame at *pos* of *data* into *frames*; where it ends, or *pos* if
        it is not all there yet."""
        self._wanted = 0
        if len(data) - pos < HEADER_LEN:
            if not MAGIC.startswith(data[pos : pos + len(MAGIC)]):
                raise FrameError("bad magic: not a session replication frame")
            return pos
        magic, version, raw_type, flags, sender_len, seq, link, length = _HEADER.unpack_from(data, pos)
        if magic != MAGIC:
            raise FrameError("bad magic: not a session replication frame")
        if version != VERSION:
            raise FrameError(f"unsupported frame version {version}")
        msg_type = _TYPES.get(raw_type)
        if msg_type is None:
            raise FrameError(f"unknown message type {raw_type}")
        if msg_type not in self._schemas:
            raise FrameError(f"{msg_type.name} is not allowed on this connection")
        if flags & ~FLAG_AUTH:
            raise FrameError(f"unknown flags {flags:#x}")
        if self._local and flags & FLAG_AUTH:
            raise FrameError("tagged cluster frame on a local connection")
        if not self._local and not flags & FLAG_AUTH:
            raise AuthError("frame carries no HMAC tag")
        if sender_len > MAX_SENDER_LEN:
            raise FrameError(f"sender id of {sender_len} bytes exceeds {MAX_SENDER_LEN}")
        if length > self.max_frame:
            raise FrameError(f"payload of {length} bytes exceeds the limit of {self.max_frame}")
        sender_start = pos + HEADER_LEN
        payload_start = sender_start + sender_len
        signed_end = payload_start + length
        end = signed_end if self._local else signed_end + TAG_LEN
        if len(data) < end:
            self._wanted = end - pos
            return pos
        if not self._local:
            signed = memoryview(data)[pos:signed_end]
            tag = data[signed_end:end]
            if not any(hmac.compare_digest(_tag(key, signed), tag) for key in self._keys):
                raise AuthError("bad HMAC tag: wrong cluster secret or altered frame")
        self._check_order(msg_type, seq, link)
        raw_sender = data[sender_start:payload_start]
        sender = self.sender if raw_sender == self._raw_sender else self._decode_sender(raw_sender)
        body = self._decode_payload(msg_type, data[payload_start:signed_end])
        self.last_seq = seq
        frames.append(Frame(msg_type, seq, sender, body, length))
        return end

    def _check_order(self, msg_type: MessageType, seq: int, link: bytes) -> None:
        if seq <= self.last_seq:
            raise ReplayError(f"sequence number {seq} not above {self.last_seq}: replayed frame")
        if self._nonce is None:
            return
        if msg_type is MessageType.HEARTBEAT:
            raise FrameError("HEARTBEAT is a multicast datagram, not a connection frame")
        if msg_type is MessageType.HELLO:
            if self.hello_seen:
                raise FrameError("second HELLO on one connection")
            if link != _NO_LINK:
                raise FrameError("HELLO bound to a connection")
            self.hello_seen = True
        elif not self.hello_seen:
            raise FrameError(f"{msg_type.name} before HELLO")
        elif not hmac.compare_digest(link, self._nonce):
            raise ReplayError("frame bound to another connection: replayed frame")

    def _decode_sender(self, raw: bytes) -> str:
        try:
            sender = raw.decode("ascii")
        except UnicodeDecodeError:
            raise FrameError("sender id is not ASCII") from None
        if not (self._local and sender == "") and _MEMBER_ID.fullmatch(sender) is None:
            raise FrameError(f"invalid sender id {sender!r}")
        if self.sender is None:
            # Interned: a member id is stored with every session that member wrote.
            self.sender = sys.intern(sender)
            self._raw_sender = raw
        elif sender != self.sender:
            raise FrameError(f"sender changed from {self.sender!r} to {sender!r} on one connection")
        return self.sender

    def _decode_payload(self, msg_type: MessageType, raw: bytes) -> dict[str, Any]:
        try:
            body = _DECODER.decode(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise FrameError(f"{msg_type.name}: payload is not valid JSON: {exc}") from None
        check_body(msg_type, body, local=self._local)
        return body


def transfer_chunks(
    records: Iterable[dict[str, Any]],
    max_bytes: int = DEFAULT_MAX_FRAME // 2,
    max_sessions: int = TRANSFER_CHUNK_SESSIONS,
) -> Iterator[list[dict[str, Any]]]:
    """Group session records into ALL_SESSION_DATA chunks of at most *max_sessions*
    records and, as far as one record allows, *max_bytes* of JSON."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for record in records:
        record_size = len(compact_json(record))
        if chunk and (len(chunk) >= max_sessions or size + record_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += record_size + 1
    if chunk:
        yield chunk
