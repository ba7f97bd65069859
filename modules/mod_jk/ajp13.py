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

import operator
import struct
from collections.abc import Iterable, Iterator
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
        value = None
        for name, text in self.headers:
            # A coded name reads back as "content-length"; any other spelling is rare.
            if name == "content-length" or (len(name) == 14 and name.lower() == "content-length"):
                text = text.strip()
                if value is None:
                    value = text
                elif text != value:
                    raise AjpProtocolError("conflicting content-length headers")
        if value is None:
            return None
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


_U16 = struct.Struct(">H").pack
_U16_INTO = struct.Struct(">H").pack_into
_FRAME_HEADER = struct.Struct(">HH").unpack_from  # magic, payload length
_BODY_CHUNK_HEADER = struct.Struct(">2sHH").pack  # magic, payload length, data length
_SEND_BODY_CHUNK_HEADER = struct.Struct(">2sHBH").pack  # magic, payload length, type, data length
_NUL = b"\x00"
_STRING_ATTRIBUTE_PREFIXES = tuple(bytes((code,)) for code, _ in _STRING_ATTRIBUTES)
_string_attribute_values = operator.attrgetter(*(attr for _, attr in _STRING_ATTRIBUTES))
# Encoded header names by the spelling callers use; names without a code are added as they
# come, up to this many, so a peer sending random names cannot grow it without bound.
_NAME_CACHE_LIMIT = 512


def _int16(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise AjpError(f"integer {value} does not fit in 16 bits")
    return _U16(value)


def _encode_text(value: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as e:
        raise AjpError(f"cannot encode {value!r}: {e.reason}") from None


def _string(value: str) -> bytes:
    """An AJP13 string: the length, the bytes and a NUL."""
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as e:
        raise AjpError(f"cannot encode {value!r}: {e.reason}") from None
    if len(data) >= _NULL_LEN:
        raise AjpError(f"string of {len(data)} bytes is too long for AJP13")
    return _U16(len(data)) + data + _NUL


def _name_table(codes: dict[str, int], spellings: Iterable[str]) -> dict[str, bytes]:
    return {spelling: _U16(codes[spelling.lower()]) for spelling in spellings}


def _header_name(name: str, codes: dict[str, int], cache: dict[str, bytes]) -> bytes:
    """A header name as sent: its code, else the name as a string."""
    encoded = cache.get(name)
    if encoded is not None:
        return encoded
    code = codes.get(name.lower())
    if code is not None:
        encoded = _U16(code)
    else:
        raw = _encode_text(name)
        if len(raw) > _MAX_HEADER_NAME_LEN:
            raise AjpError(f"header name of {len(raw)} bytes is too long for AJP13")
        encoded = _U16(len(raw)) + raw + _NUL
    if len(cache) < _NAME_CACHE_LIMIT:
        cache[name] = encoded
    return encoded


_REQUEST_NAME_CACHE = _name_table(
    REQUEST_HEADER_CODES, [s for n in REQUEST_HEADER_CODES for s in (n, n.title(), n.upper())]
)
_RESPONSE_NAME_CACHE = _name_table(
    RESPONSE_HEADER_CODES,
    [s for n in RESPONSE_HEADER_NAMES.values() for s in (n, n.lower(), n.title(), n.upper())],
)


def _encoded(value: str) -> bytes:
    """``value`` as an AJP13 string, from the table of recent ones when it is there.

    Most strings of a request (the protocol, addresses, server name, common header values,
    the secret and attribute names) repeat from one request to the next.  The table holds
    short strings only and starts over when full, so it stays small whatever comes.
    """
    encoded = _string(value)
    if len(value) <= _STRING_CACHE_MAX_LEN:
        if len(_STRINGS) >= _STRING_CACHE_LIMIT:
            _STRINGS.clear()
        _STRINGS[value] = encoded
    return encoded


_STRINGS: dict[str, bytes] = {}
_STRING_CACHE_LIMIT = 1024
_STRING_CACHE_MAX_LEN = 256
_FORWARD_HEAD = struct.Struct(">2sHBB")  # magic, payload length (filled in last), type, method
_SEND_HEADERS_HEAD = struct.Struct(">2sHB2s").pack  # magic, payload length (filled in last), type, status
_PORT_SSL_COUNT = struct.Struct(">HBH")  # server_port, is_ssl, header count


def encode_forward_request(
    msg: ForwardRequest, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
) -> bytes:
    """Encode a Forward Request packet; raise :class:`AjpError` if it does not fit."""
    method = msg.method
    if not method:
        raise AjpError("empty request method")
    method_code = METHOD_CODES.get(method, SC_M_JK_STORED)
    headers = msg.headers
    strings = _STRINGS
    names = _REQUEST_NAME_CACHE
    buf = bytearray(_FORWARD_HEAD.pack(MAGIC_TO_CONTAINER, 0, FORWARD_REQUEST, method_code))
    for value in (msg.protocol, msg.req_uri, msg.remote_addr, msg.remote_host, msg.server_name):
        buf += strings.get(value) or _encoded(value)
    server_port = msg.server_port
    count = len(headers)
    if not 0 <= server_port <= 0xFFFF or count > 0xFFFF:
        _int16(server_port)
        _int16(count)
    buf += _PORT_SSL_COUNT.pack(server_port, 1 if msg.is_ssl else 0, count)
    for name, value in headers:
        buf += names.get(name) or _header_name(name, REQUEST_HEADER_CODES, names)
        buf += strings.get(value) or _encoded(value)
    for prefix, value in zip(_STRING_ATTRIBUTE_PREFIXES, _string_attribute_values(msg), strict=True):
        if value is not None:
            buf += prefix
            buf += strings.get(value) or _encoded(value)
    if msg.ssl_key_size is not None:
        buf += b"\x0b"  # SC_A_SSL_KEY_SIZE
        buf += _int16(msg.ssl_key_size)
    if method_code == SC_M_JK_STORED:
        buf += b"\x0d"  # SC_A_STORED_METHOD
        buf += _string(method)
    for name, value in msg.req_attributes:
        buf += b"\x0a"  # SC_A_REQ_ATTRIBUTE
        buf += strings.get(name) or _encoded(name)
        buf += strings.get(value) or _encoded(value)
    buf.append(SC_A_ARE_DONE)
    return _framed(buf, max_packet_size)


def _framed(buf: bytearray, max_packet_size: int) -> bytes:
    """The packet in ``buf`` (its header's length still 0) with the length filled in."""
    size = len(buf)
    if size > max_packet_size or not MIN_MAX_PACKET_SIZE <= max_packet_size <= MAX_MAX_PACKET_SIZE:
        check_max_packet_size(max_packet_size)
        raise AjpError(f"message of {size} bytes does not fit in max_packet_size {max_packet_size}")
    _U16_INTO(buf, 2, size - HEADER_LEN)
    return bytes(buf)


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
    return _BODY_CHUNK_HEADER(MAGIC_TO_CONTAINER, len(data) + 2, len(data)) + data


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
    headers = msg.headers
    status = msg.status
    strings = _STRINGS
    names = _RESPONSE_NAME_CACHE
    buf = bytearray(_SEND_HEADERS_HEAD(MAGIC_TO_SERVER, 0, SEND_HEADERS, _int16(status)))
    # httpd fails on a null reason, so an empty one is sent as the status number.
    reason = msg.reason or str(status)
    buf += strings.get(reason) or _encoded(reason)
    buf += _int16(len(headers))
    for name, value in headers:
        buf += names.get(name) or _header_name(name, RESPONSE_HEADER_CODES, names)
        buf += strings.get(value) or _encoded(value)
    return _framed(buf, max_packet_size)


def encode_send_body_chunk(data: bytes, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> bytes:
    """Encode a Send Body Chunk; empty ``data`` is a flush.

    Raises :class:`AjpError` if ``data`` exceeds :func:`max_send_body_chunk_size`.
    """
    limit = max_send_body_chunk_size(max_packet_size)
    if len(data) > limit:
        raise AjpError(f"response chunk of {len(data)} bytes exceeds {limit}")
    return _SEND_BODY_CHUNK_HEADER(MAGIC_TO_SERVER, len(data) + 4, SEND_BODY_CHUNK, len(data)) + data + _NUL


def encode_get_body_chunk(length: int) -> bytes:
    """Encode a Get Body Chunk asking for up to ``length`` request body bytes."""
    return MAGIC_TO_SERVER + b"\x00\x03\x06" + _int16(length)


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

    __slots__ = ("magic", "max_packet_size", "_magic", "_buf", "_pos", "_error")

    def __init__(self, magic: bytes, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        if magic not in (MAGIC_TO_CONTAINER, MAGIC_TO_SERVER):
            raise ValueError(f"unknown AJP13 magic {magic!r}")
        self.magic = magic
        self.max_packet_size = check_max_packet_size(max_packet_size)
        self._magic = int.from_bytes(magic, "big")
        # What was fed and not yet taken starts at _pos.  Packets are sliced straight
        # out of the bytes received; only a partial packet is kept in a bytearray that
        # the next bytes are appended to.
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._error: AjpProtocolError | None = None

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            self._buf = bytes(data)
        elif type(buf) is bytearray:
            del buf[:pos]
            buf += data
        else:
            self._buf = bytearray(memoryview(buf)[pos:])
            self._buf += data
        self._pos = 0

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a whole packet (non-zero at EOF means truncation)."""
        return len(self._buf) - self._pos

    def next_packet(self) -> bytes | None:
        """Return the next whole payload, or None until more bytes are fed."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        pos = self._pos
        available = len(buf) - pos
        if available < HEADER_LEN:
            if available >= 2 and buf[pos] << 8 | buf[pos + 1] != self._magic:
                self._fail_magic()
            return None
        magic, length = _FRAME_HEADER(buf, pos)
        if magic != self._magic:
            self._fail_magic()
        if HEADER_LEN + length > self.max_packet_size:
            self._error = AjpProtocolError(
                f"packet length {length} exceeds max_packet_size {self.max_packet_size}"
            )
            raise self._error
        start = pos + HEADER_LEN
        end = start + length
        if end > len(buf):
            return None
        self._pos = end
        if type(buf) is bytes:
            return buf[start:end]
        return bytes(memoryview(buf)[start:end])

    def _fail_magic(self) -> None:
        pos = self._pos
        self._error = AjpProtocolError(
            f"bad packet magic {bytes(self._buf[pos:pos + 2]).hex()}, expected {self.magic.hex()}"
        )
        raise self._error

    def __iter__(self) -> Iterator[bytes]:
        """Yield every whole payload buffered so far."""
        while (payload := self.next_packet()) is not None:
            yield payload


# Decoding works on the payload with an explicit position; every read checks the length
# first, so short or malformed input raises AjpProtocolError and nothing else.


def _truncated(what: str) -> AjpProtocolError:
    return AjpProtocolError(f"packet truncated in {what}")


def _text_at(data: bytes, pos: int, what: str, subject: str | None = None) -> tuple[str, int]:
    """The string at ``pos`` and the position after it; ``what`` (and the ``subject``'s
    name) say which field it is when it is malformed."""
    try:
        length = data[pos] << 8 | data[pos + 1]
        if length == _NULL_LEN:
            return "", pos + 2
        end = pos + 2 + length
        if not data[end]:  # the NUL after the bytes; IndexError when the packet ends first
            return data[pos + 2 : end].decode("utf-8", "surrogateescape"), end + 1
    except IndexError:
        raise _truncated(_field(what, subject)) from None
    raise AjpProtocolError(f"{_field(what, subject)} is not NUL-terminated")


def _field(what: str, subject: str | None) -> str:
    return what if subject is None else f"{what} {subject!r}"


def _headers_at(data: bytes, pos: int, names: dict[int, str]) -> tuple[list[tuple[str, str]], int]:
    """The headers at ``pos`` (their count first) and the position after them."""
    size = len(data)
    if pos + 2 > size:
        raise _truncated("header count")
    count = data[pos] << 8 | data[pos + 1]
    pos += 2
    headers = []
    append = headers.append
    for _ in range(count):
        if pos + 2 > size:
            raise _truncated("header name")
        first = data[pos] << 8 | data[pos + 1]
        if first >> 8 == 0xA0:
            name = names.get(first)
            if name is None:
                raise AjpProtocolError(f"unknown header code {first:#06x}")
            pos += 2
        elif first == _NULL_LEN:
            raise AjpProtocolError("null header name")
        else:
            name, pos = _text_at(data, pos, "header name")
        value, pos = _text_at(data, pos, "value of header", name)
        append((name, value))
    return headers, pos


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
    # Nearly every request takes the one-pass reader; whatever it does not read (anything
    # unusual or malformed) the full decoder reads, with the same message or error.
    try:
        msg = _read_common_forward_request(payload)
    except (IndexError, UnicodeDecodeError):  # truncated, or a string to decode leniently
        msg = None
    return msg if msg is not None else _decode_forward_request_fully(payload)


def _read_common_forward_request(p: bytes) -> ForwardRequest | None:
    """The common Forward Request read in one pass without a call per string, or None
    for the full decoder (a stored method, a null header value or attribute...). A string is its length
    (2 bytes), its bytes and a NUL; a read past the end raises IndexError (as does a null
    string other than the first five: its length 0xFFFF reaches past a packet's end)."""
    if p[0] != FORWARD_REQUEST:
        return None
    method = METHOD_NAMES.get(p[1])
    if method is None:
        return None
    strings = []
    pos = 2
    for _ in range(5):  # protocol, req_uri, remote_addr, remote_host, server_name
        length = p[pos] << 8 | p[pos + 1]
        if length == 0xFFFF:  # null: mod_jk's remote_host when it looks no name up
            strings.append("")
            pos += 2
            continue
        end = pos + 2 + length
        if p[end]:
            return None
        strings.append(p[pos + 2 : end].decode())
        pos = end + 1
    port = p[pos] << 8 | p[pos + 1]
    is_ssl = p[pos + 2] != 0
    count = p[pos + 3] << 8 | p[pos + 4]
    pos += 5
    names = REQUEST_HEADER_NAMES
    headers = []
    for _ in range(count):
        first = p[pos]
        if first == 0xA0:
            name = names.get(0xA000 | p[pos + 1])
            if name is None:
                return None
            pos += 2
        else:
            end = pos + 2 + (first << 8 | p[pos + 1])
            if p[end]:
                return None
            name = p[pos + 2 : end].decode()
            pos = end + 1
        end = pos + 2 + (p[pos] << 8 | p[pos + 1])
        if p[end]:
            return None
        headers.append((name, p[pos + 2 : end].decode()))
        pos = end + 1
    fields = {}
    attributes = []
    key_size = None
    while True:
        code = p[pos]
        pos += 1
        if code == SC_A_ARE_DONE:
            break
        end = pos + 2 + (p[pos] << 8 | p[pos + 1])
        field = _STRING_ATTRIBUTE_FIELDS.get(code)
        if field is not None:
            if p[end]:
                return None
            fields[field] = p[pos + 2 : end].decode()
        elif code == SC_A_REQ_ATTRIBUTE:
            if p[end]:
                return None
            name = p[pos + 2 : end].decode()
            pos = end + 1
            end = pos + 2 + (p[pos] << 8 | p[pos + 1])
            if p[end]:
                return None
            attributes.append((name, p[pos + 2 : end].decode()))
        elif code == SC_A_SSL_KEY_SIZE:
            key_size = p[pos] << 8 | p[pos + 1]
            end = pos + 1
        else:
            return None
        pos = end + 1
    if pos != len(p):
        return None
    return ForwardRequest(
        method, *strings, port, is_ssl, headers, ssl_key_size=key_size, req_attributes=attributes, **fields
    )


def _decode_forward_request_fully(payload: bytes) -> ForwardRequest:
    size = len(payload)
    if size < 2:
        raise _truncated("method")
    method_code = payload[1]
    if method_code == SC_M_JK_STORED:
        method = None
    else:
        method = METHOD_NAMES.get(method_code)
        if method is None:
            raise AjpProtocolError(f"unknown method code {method_code}")
    protocol, pos = _text_at(payload, 2, "protocol")
    req_uri, pos = _text_at(payload, pos, "req_uri")
    remote_addr, pos = _text_at(payload, pos, "remote_addr")
    remote_host, pos = _text_at(payload, pos, "remote_host")
    server_name, pos = _text_at(payload, pos, "server_name")
    if pos + 3 > size:
        raise _truncated("server_port" if pos + 2 > size else "is_ssl")
    server_port = payload[pos] << 8 | payload[pos + 1]
    is_ssl = payload[pos + 2] != 0
    headers, pos = _headers_at(payload, pos + 3, REQUEST_HEADER_NAMES)
    msg = ForwardRequest(method="", protocol=protocol, req_uri=req_uri, remote_addr=remote_addr,
                         remote_host=remote_host, server_name=server_name, server_port=server_port,
                         is_ssl=is_ssl, headers=headers)
    fields = _STRING_ATTRIBUTE_FIELDS
    while True:
        if pos >= size:
            raise _truncated("attributes (no are_done terminator)")
        code = payload[pos]
        pos += 1
        if code == SC_A_ARE_DONE:
            break
        attr = fields.get(code)
        if attr is not None:
            value, pos = _text_at(payload, pos, attr)
            setattr(msg, attr, value)
        elif code == SC_A_REQ_ATTRIBUTE:
            name, pos = _text_at(payload, pos, "req_attribute name")
            value, pos = _text_at(payload, pos, "req_attribute", name)
            msg.req_attributes.append((name, value))
        elif code == SC_A_SSL_KEY_SIZE:
            if pos + 2 > size:
                raise _truncated("ssl_key_size")
            msg.ssl_key_size = payload[pos] << 8 | payload[pos + 1]
            pos += 2
        elif code == SC_A_STORED_METHOD:
            # As in Tomcat, a stored method overrides the method byte.
            method, pos = _text_at(payload, pos, "stored_method")
        else:
            raise AjpProtocolError(f"unknown attribute code {code:#04x}")
    if pos != size:
        raise AjpProtocolError(f"{size - pos} unexpected bytes after Forward Request")
    if method is None:
        raise AjpProtocolError("stored method byte without a stored_method attribute")
    if not method:
        raise AjpProtocolError("empty stored_method")
    msg.method = method
    return msg


def decode_body_packet(payload: bytes) -> bytes:
    """Decode a request body packet's payload; ``b""`` means the body has ended."""
    size = len(payload)
    if not size:
        return b""
    if size < 2:
        raise _truncated("body length")
    end = 2 + (payload[0] << 8 | payload[1])
    if end > size:
        raise _truncated("body data")
    if end != size:
        raise AjpProtocolError(f"{size - end} unexpected bytes after body data")
    return payload[2:]


def decode_container_message(payload: bytes) -> ContainerMessage:
    """Decode a payload from the container: SendHeaders, SendBodyChunk,
    GetBodyChunk, EndResponse or CPong."""
    if not payload:
        raise AjpProtocolError("empty packet from the container")
    size = len(payload)
    kind = payload[0]
    if kind == SEND_BODY_CHUNK:
        if size < 3:
            raise _truncated("chunk length")
        end = 3 + (payload[1] << 8 | payload[2])
        if end > size:
            raise _truncated("chunk data")
        # Tomcat ends the chunk with a NUL; other containers may not.
        if end != size and (end + 1 != size or payload[end]):
            raise AjpProtocolError("unexpected bytes after Send Body Chunk data")
        return SendBodyChunk(payload[3:end])
    if kind == SEND_HEADERS:
        if size < 3:
            raise _truncated("status")
        reason, pos = _text_at(payload, 3, "reason")
        headers, pos = _headers_at(payload, pos, RESPONSE_HEADER_NAMES)
        if pos != size:
            raise AjpProtocolError(f"{size - pos} unexpected bytes after Send Headers")
        return SendHeaders(payload[1] << 8 | payload[2], reason, headers)
    if kind == GET_BODY_CHUNK:
        if size < 3:
            raise _truncated("requested length")
        if size > 3:
            raise AjpProtocolError(f"{size - 3} unexpected bytes after Get Body Chunk")
        return GetBodyChunk(payload[1] << 8 | payload[2])
    if kind == END_RESPONSE:
        if size < 2:
            raise _truncated("reuse flag")
        if size > 2:
            raise AjpProtocolError(f"{size - 2} unexpected bytes after End Response")
        return EndResponse(payload[1] != 0)
    if kind == CPONG_REPLY:
        _expect_len(payload, 1, "CPong")
        return CPong()
    raise AjpProtocolError(f"unexpected message type {kind} from the container")


def _expect_len(payload: bytes, length: int, what: str) -> None:
    if len(payload) != length:
        raise AjpProtocolError(f"{what} of {len(payload)} bytes, expected {length}")
