"""AJP13 wire codec: bytes in, messages out; messages in, bytes out.

Used by both ends of an AJP13 connection: mod_jk's ajp13 worker (the web server
side) and pyhttpd's AJP13 listener (the container side).  Nothing here touches
sockets, clocks or gevent.

Framing: every packet is a 2-byte magic, a 2-byte big-endian payload length that
does not count those 4 bytes, then the payload.  Packets to the container start
with ``0x12 0x34``; packets to the web server start with ``"AB"``.  A whole
packet, header included, is at most ``max_packet_size`` bytes (8192 by default,
65536 at most); both peers must agree on it.

Strings travel as a 2-byte length, the bytes and a NUL that the length does not
count; the length 0xFFFF (with no bytes and no NUL) is a null string.  The wire
carries bytes with no declared charset, so this codec encodes and decodes them
as UTF-8 with ``surrogateescape``: UTF-8 text comes out as text, and any other
byte (ISO-8859-1 from Tomcat, say) survives as a lone surrogate and is written
back unchanged.  A null string reads as ``""``.

Request bodies: when a request has a body (a Content-Length above 0), the web
server sends the first body packet right after the Forward Request without being
asked; later ones answer the container's Get Body Chunk.  When the length is
unknown (chunked) it waits for the first Get Body Chunk.  An empty body packet
marks the end of the body.  Body packets carry no type byte, so the container
decides by its own state whether the next packet is a body packet
(:func:`decode_body_packet`) or a message (:func:`decode_server_message`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

MAGIC_TO_CONTAINER = b"\x12\x34"
MAGIC_TO_SERVER = b"AB"
HEADER_LEN = 4

DEFAULT_MAX_PACKET_SIZE = 8192
MIN_MAX_PACKET_SIZE = 8192
MAX_MAX_PACKET_SIZE = 65536

# Message types, web server to container.
FORWARD_REQUEST = 2
SHUTDOWN = 7
PING = 8
CPING = 10
# Message types, container to web server.
SEND_BODY_CHUNK = 3
SEND_HEADERS = 4
END_RESPONSE = 5
GET_BODY_CHUNK = 6
CPONG_REPLY = 9

METHOD_CODES: dict[str, int] = {
    "OPTIONS": 1,
    "GET": 2,
    "HEAD": 3,
    "POST": 4,
    "PUT": 5,
    "DELETE": 6,
    "TRACE": 7,
    "PROPFIND": 8,
    "PROPPATCH": 9,
    "MKCOL": 10,
    "COPY": 11,
    "MOVE": 12,
    "LOCK": 13,
    "UNLOCK": 14,
    "ACL": 15,
    "REPORT": 16,
    "VERSION-CONTROL": 17,
    "CHECKIN": 18,
    "CHECKOUT": 19,
    "UNCHECKOUT": 20,
    "SEARCH": 21,
    "MKWORKSPACE": 22,
    "UPDATE": 23,
    "LABEL": 24,
    "MERGE": 25,
    "BASELINE-CONTROL": 26,
    "MKACTIVITY": 27,
}
METHOD_NAMES: dict[int, str] = {code: name for name, code in METHOD_CODES.items()}
# Method byte for any other method; its name follows in SC_A_STORED_METHOD.
SC_M_JK_STORED = 0xFF

REQUEST_HEADER_CODES: dict[str, int] = {
    "accept": 0xA001,
    "accept-charset": 0xA002,
    "accept-encoding": 0xA003,
    "accept-language": 0xA004,
    "authorization": 0xA005,
    "connection": 0xA006,
    "content-type": 0xA007,
    "content-length": 0xA008,
    "cookie": 0xA009,
    "cookie2": 0xA00A,
    "host": 0xA00B,
    "pragma": 0xA00C,
    "referer": 0xA00D,
    "user-agent": 0xA00E,
}
REQUEST_HEADER_NAMES: dict[int, str] = {code: name for name, code in REQUEST_HEADER_CODES.items()}

RESPONSE_HEADER_NAMES: dict[int, str] = {
    0xA001: "Content-Type",
    0xA002: "Content-Language",
    0xA003: "Content-Length",
    0xA004: "Date",
    0xA005: "Last-Modified",
    0xA006: "Location",
    0xA007: "Set-Cookie",
    0xA008: "Set-Cookie2",
    0xA009: "Servlet-Engine",
    0xA00A: "Status",
    0xA00B: "WWW-Authenticate",
}
# Keyed by lower-case name: header names are case-insensitive, as mod_jk treats them.
RESPONSE_HEADER_CODES: dict[str, int] = {
    name.lower(): code for code, name in RESPONSE_HEADER_NAMES.items()
}

# Forward Request attribute codes.
SC_A_CONTEXT = 0x01
SC_A_SERVLET_PATH = 0x02
SC_A_REMOTE_USER = 0x03
SC_A_AUTH_TYPE = 0x04
SC_A_QUERY_STRING = 0x05
SC_A_ROUTE = 0x06
SC_A_SSL_CERT = 0x07
SC_A_SSL_CIPHER = 0x08
SC_A_SSL_SESSION = 0x09
SC_A_REQ_ATTRIBUTE = 0x0A
SC_A_SSL_KEY_SIZE = 0x0B
SC_A_SECRET = 0x0C
SC_A_STORED_METHOD = 0x0D
SC_A_ARE_DONE = 0xFF

# Single-string attributes and the ForwardRequest field each fills, in the order
# mod_jk sends them (the secret first).
_STRING_ATTRIBUTES: tuple[tuple[int, str], ...] = (
    (SC_A_SECRET, "secret"),
    (SC_A_CONTEXT, "context"),
    (SC_A_SERVLET_PATH, "servlet_path"),
    (SC_A_REMOTE_USER, "remote_user"),
    (SC_A_AUTH_TYPE, "auth_type"),
    (SC_A_QUERY_STRING, "query_string"),
    (SC_A_ROUTE, "route"),
    (SC_A_SSL_CERT, "ssl_cert"),
    (SC_A_SSL_CIPHER, "ssl_cipher"),
    (SC_A_SSL_SESSION, "ssl_session"),
)
_STRING_ATTRIBUTE_FIELDS = dict(_STRING_ATTRIBUTES)

# A header name's first two bytes are either a code 0xA0nn or a string length,
# so a name string can be at most this long.
_MAX_HEADER_NAME_LEN = 0x9FFF
_NULL_LEN = 0xFFFF
# Payload bytes around the data: length (2) for a body packet; type (1),
# length (2) and trailing NUL (1) for a Send Body Chunk.
_BODY_PACKET_OVERHEAD = HEADER_LEN + 2
_SEND_BODY_CHUNK_OVERHEAD = HEADER_LEN + 4


class AjpError(ValueError):
    """A message that cannot be encoded, e.g. one that does not fit in a packet."""


class AjpProtocolError(AjpError):
    """Bytes received from the peer that are not valid AJP13; the connection must close."""


@dataclass(slots=True)
class ForwardRequest:
    """A request forwarded from the web server to the container (type 2).

    ``method`` is the real method name: the codec sends a method without a code
    as the stored method (byte 0xFF plus attribute ``SC_A_STORED_METHOD``), and
    reads one back into ``method``.  Header names with a code travel as the code
    and read back in lower case.  Attributes left as ``None`` are not sent;
    ``req_attributes`` are the repeatable (name, value) request attributes such
    as ``AJP_REMOTE_PORT``.
    """

    method: str = "GET"
    protocol: str = "HTTP/1.1"
    req_uri: str = "/"
    remote_addr: str = ""
    remote_host: str = ""
    server_name: str = ""
    server_port: int = 80
    is_ssl: bool = False
    headers: list[tuple[str, str]] = field(default_factory=list)
    secret: str | None = None
    context: str | None = None
    servlet_path: str | None = None
    remote_user: str | None = None
    auth_type: str | None = None
    query_string: str | None = None
    route: str | None = None
    ssl_cert: str | None = None
    ssl_cipher: str | None = None
    ssl_session: str | None = None
    ssl_key_size: int | None = None
    req_attributes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def content_length(self) -> int | None:
        """The request's Content-Length, or None when it has no such header.

        To AJP an absent Content-Length means a body of unknown, non-zero length
        (chunked), which is why mod_jk adds ``content-length: 0`` to bodiless
        requests.  Raises :class:`AjpProtocolError` for a malformed value or
        two different values.
        """
        values = {v.strip() for n, v in self.headers if n.lower() == "content-length"}
        if not values:
            return None
        if len(values) > 1:
            raise AjpProtocolError("conflicting content-length headers")
        (value,) = values
        if not value.isascii() or not value.isdigit():
            raise AjpProtocolError(f"invalid content-length {value!r}")
        return int(value)


@dataclass(slots=True)
class SendHeaders:
    """The response status line and headers (type 4)."""

    status: int = 200
    reason: str = "OK"
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class SendBodyChunk:
    """A piece of the response body (type 3); empty data asks for a flush."""

    data: bytes = b""


@dataclass(slots=True)
class GetBodyChunk:
    """The container asks for up to ``length`` more bytes of request body (type 6)."""

    length: int


@dataclass(slots=True)
class EndResponse:
    """The response is complete (type 5); ``reuse`` False means close the connection."""

    reuse: bool = True


@dataclass(slots=True)
class CPing:
    """A liveness probe from the web server (type 10)."""


@dataclass(slots=True)
class CPong:
    """The container's answer to a CPing (type 9)."""


@dataclass(slots=True)
class Shutdown:
    """A request to shut the container down (type 7); Tomcat no longer honours it."""


ContainerMessage = SendHeaders | SendBodyChunk | GetBodyChunk | EndResponse | CPong
ServerMessage = ForwardRequest | CPing | Shutdown


def check_max_packet_size(max_packet_size: int) -> int:
    """Return ``max_packet_size`` if it lies in 8192..65536, else raise :class:`AjpError`."""
    if not MIN_MAX_PACKET_SIZE <= max_packet_size <= MAX_MAX_PACKET_SIZE:
        raise AjpError(
            f"max_packet_size {max_packet_size} is outside "
            f"{MIN_MAX_PACKET_SIZE}..{MAX_MAX_PACKET_SIZE}"
        )
    return max_packet_size


def max_body_chunk_size(max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> int:
    """Most request body bytes one body packet to the container can carry."""
    return check_max_packet_size(max_packet_size) - _BODY_PACKET_OVERHEAD


def max_send_body_chunk_size(max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> int:
    """Most response body bytes one Send Body Chunk can carry."""
    return check_max_packet_size(max_packet_size) - _SEND_BODY_CHUNK_OVERHEAD


class _Builder:
    """Accumulates one payload and frames it."""

    __slots__ = ("buf",)

    def __init__(self, message_type: int | None = None) -> None:
        self.buf = bytearray()
        if message_type is not None:
            self.byte(message_type)

    def byte(self, value: int) -> None:
        if not 0 <= value <= 0xFF:
            raise AjpError(f"byte value {value} out of range")
        self.buf.append(value)

    def int16(self, value: int) -> None:
        if not 0 <= value <= 0xFFFF:
            raise AjpError(f"integer {value} does not fit in 16 bits")
        self.buf += struct.pack(">H", value)

    def raw_string(self, data: bytes) -> None:
        if len(data) >= _NULL_LEN:
            raise AjpError(f"string of {len(data)} bytes is too long for AJP13")
        self.int16(len(data))
        self.buf += data
        self.buf.append(0)

    def string(self, value: str) -> None:
        self.raw_string(_encode_text(value))

    def packet(self, magic: bytes, max_packet_size: int) -> bytes:
        size = HEADER_LEN + len(self.buf)
        if size > check_max_packet_size(max_packet_size):
            raise AjpError(
                f"message of {size} bytes does not fit in max_packet_size {max_packet_size}"
            )
        return magic + struct.pack(">H", len(self.buf)) + self.buf


def _encode_text(value: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as e:
        raise AjpError(f"cannot encode {value!r}: {e.reason}") from None


def _header_name(builder: _Builder, name: str, codes: dict[str, int]) -> None:
    code = codes.get(name.lower())
    if code is not None:
        builder.int16(code)
        return
    raw = _encode_text(name)
    if len(raw) > _MAX_HEADER_NAME_LEN:
        raise AjpError(f"header name of {len(raw)} bytes is too long for AJP13")
    builder.raw_string(raw)


def encode_forward_request(
    msg: ForwardRequest, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
) -> bytes:
    """Encode a Forward Request packet; raise :class:`AjpError` if it does not fit."""
    if not msg.method:
        raise AjpError("empty request method")
    b = _Builder(FORWARD_REQUEST)
    method_code = METHOD_CODES.get(msg.method, SC_M_JK_STORED)
    b.byte(method_code)
    for value in (msg.protocol, msg.req_uri, msg.remote_addr, msg.remote_host, msg.server_name):
        b.string(value)
    b.int16(msg.server_port)
    b.byte(1 if msg.is_ssl else 0)
    b.int16(len(msg.headers))
    for name, value in msg.headers:
        _header_name(b, name, REQUEST_HEADER_CODES)
        b.string(value)
    for code, attr in _STRING_ATTRIBUTES:
        value = getattr(msg, attr)
        if value is not None:
            b.byte(code)
            b.string(value)
    if msg.ssl_key_size is not None:
        b.byte(SC_A_SSL_KEY_SIZE)
        b.int16(msg.ssl_key_size)
    if method_code == SC_M_JK_STORED:
        b.byte(SC_A_STORED_METHOD)
        b.string(msg.method)
    for name, value in msg.req_attributes:
        b.byte(SC_A_REQ_ATTRIBUTE)
        b.string(name)
        b.string(value)
    b.byte(SC_A_ARE_DONE)
    return b.packet(MAGIC_TO_CONTAINER, max_packet_size)


def encode_body_chunk(data: bytes, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> bytes:
    """Encode a request body packet to the container.

    Empty ``data`` gives the empty packet ``12 34 00 00`` that ends the body.
    Raises :class:`AjpError` if ``data`` exceeds :func:`max_body_chunk_size`.
    """
    if not data:
        return MAGIC_TO_CONTAINER + b"\x00\x00"
    limit = max_body_chunk_size(max_packet_size)
    if len(data) > limit:
        raise AjpError(f"body chunk of {len(data)} bytes exceeds {limit}")
    return MAGIC_TO_CONTAINER + struct.pack(">HH", len(data) + 2, len(data)) + data


def encode_cping() -> bytes:
    """Encode a CPing packet: ``12 34 00 01 0A``."""
    return MAGIC_TO_CONTAINER + bytes((0, 1, CPING))


def encode_shutdown() -> bytes:
    """Encode a Shutdown packet (modern Tomcat closes the connection on it)."""
    return MAGIC_TO_CONTAINER + bytes((0, 1, SHUTDOWN))


def encode_cpong() -> bytes:
    """Encode a CPong packet: ``41 42 00 01 09``."""
    return MAGIC_TO_SERVER + bytes((0, 1, CPONG_REPLY))


def encode_send_headers(msg: SendHeaders, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> bytes:
    """Encode a Send Headers packet; raise :class:`AjpError` if it does not fit."""
    b = _Builder(SEND_HEADERS)
    b.int16(msg.status)
    # httpd fails on a null reason, so an empty one is sent as the status number.
    b.string(msg.reason or str(msg.status))
    b.int16(len(msg.headers))
    for name, value in msg.headers:
        _header_name(b, name, RESPONSE_HEADER_CODES)
        b.string(value)
    return b.packet(MAGIC_TO_SERVER, max_packet_size)


def encode_send_body_chunk(data: bytes, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> bytes:
    """Encode a Send Body Chunk; empty ``data`` is a flush.

    Raises :class:`AjpError` if ``data`` exceeds :func:`max_send_body_chunk_size`.
    """
    limit = max_send_body_chunk_size(max_packet_size)
    if len(data) > limit:
        raise AjpError(f"response chunk of {len(data)} bytes exceeds {limit}")
    b = _Builder(SEND_BODY_CHUNK)
    b.raw_string(data)
    return b.packet(MAGIC_TO_SERVER, max_packet_size)


def encode_get_body_chunk(length: int) -> bytes:
    """Encode a Get Body Chunk asking for up to ``length`` request body bytes."""
    b = _Builder(GET_BODY_CHUNK)
    b.int16(length)
    return b.packet(MAGIC_TO_SERVER, MIN_MAX_PACKET_SIZE)


def encode_end_response(reuse: bool = True) -> bytes:
    """Encode an End Response; ``reuse`` tells the web server to keep the connection."""
    return MAGIC_TO_SERVER + bytes((0, 2, END_RESPONSE, 1 if reuse else 0))


class PacketReader:
    """Incremental framer: feed received bytes, take out whole packet payloads.

    ``magic`` is the header the peer must send: :data:`MAGIC_TO_CONTAINER` on
    the container side, :data:`MAGIC_TO_SERVER` on the web server side.  A bad
    magic or a length beyond ``max_packet_size`` raises
    :class:`AjpProtocolError`, and keeps raising it, since the stream can no
    longer be framed.
    """

    def __init__(self, magic: bytes, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        if magic not in (MAGIC_TO_CONTAINER, MAGIC_TO_SERVER):
            raise ValueError(f"unknown AJP13 magic {magic!r}")
        self.magic = magic
        self.max_packet_size = check_max_packet_size(max_packet_size)
        self._buf = bytearray()
        self._error: AjpProtocolError | None = None

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a whole packet (non-zero at EOF means truncation)."""
        return len(self._buf)

    def next_packet(self) -> bytes | None:
        """Return the next whole payload, or None until more bytes are fed."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        if len(buf) >= 2 and buf[:2] != self.magic:
            self._error = AjpProtocolError(
                f"bad packet magic {bytes(buf[:2]).hex()}, expected {self.magic.hex()}"
            )
            raise self._error
        if len(buf) < HEADER_LEN:
            return None
        (length,) = struct.unpack_from(">H", buf, 2)
        if HEADER_LEN + length > self.max_packet_size:
            self._error = AjpProtocolError(
                f"packet length {length} exceeds max_packet_size {self.max_packet_size}"
            )
            raise self._error
        end = HEADER_LEN + length
        if len(buf) < end:
            return None
        payload = bytes(buf[HEADER_LEN:end])
        del buf[:end]
        return payload

    def __iter__(self) -> Iterator[bytes]:
        """Yield every whole payload buffered so far."""
        while (payload := self.next_packet()) is not None:
            yield payload


class _Cursor:
    """Reads AJP13 data types from one payload, raising AjpProtocolError when short."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise AjpProtocolError(f"packet truncated in {what}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def int16(self, what: str) -> int:
        hi, lo = self.take(2, what)
        return hi << 8 | lo

    def peek_int16(self, what: str) -> int:
        value = self.int16(what)
        self.pos -= 2
        return value

    def raw_string(self, what: str) -> bytes:
        length = self.int16(what)
        if length == _NULL_LEN:
            return b""
        data = self.take(length, what)
        if self.take(1, what) != b"\x00":
            raise AjpProtocolError(f"{what} is not NUL-terminated")
        return data

    def string(self, what: str) -> str:
        return self.raw_string(what).decode("utf-8", "surrogateescape")

    def end(self, what: str) -> None:
        if self.pos != len(self.data):
            raise AjpProtocolError(f"{len(self.data) - self.pos} unexpected bytes after {what}")


def _read_headers(cur: _Cursor, names: dict[int, str]) -> list[tuple[str, str]]:
    headers = []
    for _ in range(cur.int16("header count")):
        first = cur.peek_int16("header name")
        if first >> 8 == 0xA0:
            cur.pos += 2
            name = names.get(first)
            if name is None:
                raise AjpProtocolError(f"unknown header code {first:#06x}")
        elif first == _NULL_LEN:
            raise AjpProtocolError("null header name")
        else:
            name = cur.string("header name")
        headers.append((name, cur.string(f"value of header {name!r}")))
    return headers


def decode_server_message(payload: bytes) -> ServerMessage:
    """Decode a payload from the web server: ForwardRequest, CPing or Shutdown.

    Request body packets have no type byte; read those with
    :func:`decode_body_packet`.
    """
    if not payload:
        raise AjpProtocolError("empty packet where a message was expected")
    kind = payload[0]
    if kind == FORWARD_REQUEST:
        return _decode_forward_request(payload)
    if kind == CPING:
        _expect_len(payload, 1, "CPing")
        return CPing()
    if kind == SHUTDOWN:
        _expect_len(payload, 1, "Shutdown")
        return Shutdown()
    raise AjpProtocolError(f"unexpected message type {kind} from the web server")


def _decode_forward_request(payload: bytes) -> ForwardRequest:
    cur = _Cursor(payload)
    cur.byte("message type")
    method_code = cur.byte("method")
    if method_code == SC_M_JK_STORED:
        method = None
    elif method_code in METHOD_NAMES:
        method = METHOD_NAMES[method_code]
    else:
        raise AjpProtocolError(f"unknown method code {method_code}")
    msg = ForwardRequest(
        method="",
        protocol=cur.string("protocol"),
        req_uri=cur.string("req_uri"),
        remote_addr=cur.string("remote_addr"),
        remote_host=cur.string("remote_host"),
        server_name=cur.string("server_name"),
        server_port=cur.int16("server_port"),
        is_ssl=cur.byte("is_ssl") != 0,
        headers=_read_headers(cur, REQUEST_HEADER_NAMES),
    )
    while (code := cur.byte("attributes (no are_done terminator)")) != SC_A_ARE_DONE:
        if code in _STRING_ATTRIBUTE_FIELDS:
            attr = _STRING_ATTRIBUTE_FIELDS[code]
            setattr(msg, attr, cur.string(attr))
        elif code == SC_A_SSL_KEY_SIZE:
            msg.ssl_key_size = cur.int16("ssl_key_size")
        elif code == SC_A_STORED_METHOD:
            # As in Tomcat, a stored method overrides the method byte.
            method = cur.string("stored_method")
        elif code == SC_A_REQ_ATTRIBUTE:
            name = cur.string("req_attribute name")
            msg.req_attributes.append((name, cur.string(f"req_attribute {name!r}")))
        else:
            raise AjpProtocolError(f"unknown attribute code {code:#04x}")
    cur.end("Forward Request")
    if method is None:
        raise AjpProtocolError("stored method byte without a stored_method attribute")
    if not method:
        raise AjpProtocolError("empty stored_method")
    msg.method = method
    return msg


def decode_body_packet(payload: bytes) -> bytes:
    """Decode a request body packet's payload; ``b""`` means the body has ended."""
    if not payload:
        return b""
    cur = _Cursor(payload)
    data = cur.take(cur.int16("body length"), "body data")
    cur.end("body data")
    return data


def decode_container_message(payload: bytes) -> ContainerMessage:
    """Decode a payload from the container: SendHeaders, SendBodyChunk,
    GetBodyChunk, EndResponse or CPong."""
    if not payload:
        raise AjpProtocolError("empty packet from the container")
    cur = _Cursor(payload)
    kind = cur.byte("message type")
    if kind == SEND_BODY_CHUNK:
        data = cur.take(cur.int16("chunk length"), "chunk data")
        # Tomcat ends the chunk with a NUL; other containers may not.
        if payload[cur.pos :] not in (b"", b"\x00"):
            raise AjpProtocolError("unexpected bytes after Send Body Chunk data")
        return SendBodyChunk(data)
    if kind == SEND_HEADERS:
        msg = SendHeaders(
            status=cur.int16("status"),
            reason=cur.string("reason"),
            headers=_read_headers(cur, RESPONSE_HEADER_NAMES),
        )
        cur.end("Send Headers")
        return msg
    if kind == GET_BODY_CHUNK:
        length = cur.int16("requested length")
        cur.end("Get Body Chunk")
        return GetBodyChunk(length)
    if kind == END_RESPONSE:
        reuse = cur.byte("reuse flag") != 0
        cur.end("End Response")
        return EndResponse(reuse)
    if kind == CPONG_REPLY:
        _expect_len(payload, 1, "CPong")
        return CPong()
    raise AjpProtocolError(f"unexpected message type {kind} from the container")


def _expect_len(payload: bytes, length: int, what: str) -> None:
    if len(payload) != length:
        raise AjpProtocolError(f"{what} of {len(payload)} bytes, expected {length}")
