"""The AJP13 codec, checked against byte vectors written from the protocol spec."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.mod_jk import ajp13
from modules.mod_jk.ajp13 import (
    MAGIC_TO_CONTAINER,
    MAGIC_TO_SERVER,
    METHOD_CODES,
    REQUEST_HEADER_CODES,
    RESPONSE_HEADER_NAMES,
    AjpError,
    AjpProtocolError,
    CPing,
    CPong,
    EndResponse,
    ForwardRequest,
    GetBodyChunk,
    PacketReader,
    SendBodyChunk,
    SendHeaders,
    Shutdown,
)


def payload_of(packet: bytes) -> bytes:
    """Frame one whole packet with the reader for its direction and return its payload."""
    reader = PacketReader(packet[:2], ajp13.MAX_MAX_PACKET_SIZE)
    reader.feed(packet)
    payload = reader.next_packet()
    assert payload is not None and reader.pending == 0
    return payload


def s(text: bytes) -> bytes:
    """An AJP13 string as written by hand: length, bytes, NUL."""
    return struct.pack(">H", len(text)) + text + b"\x00"


def forward_round_trip(msg: ForwardRequest, max_packet_size: int = 8192) -> ForwardRequest:
    return ajp13.decode_server_message(payload_of(ajp13.encode_forward_request(msg, max_packet_size)))


def container_round_trip(packet: bytes):
    return ajp13.decode_container_message(payload_of(packet))


def full_request() -> ForwardRequest:
    return ForwardRequest(
        method="POST",
        protocol="HTTP/1.1",
        req_uri="/examples/servlets/servlet/RequestInfoExample",
        remote_addr="127.0.0.1",
        remote_host="localhost",
        server_name="www.example.com",
        server_port=443,
        is_ssl=True,
        headers=[("host", "www.example.com"), ("X-Forwarded-For", "10.1.2.3"), ("cookie", "a=b")],
        secret="s3cr3t",
        context="/examples",
        servlet_path="/servlet",
        remote_user="alice",
        auth_type="Basic",
        query_string="a=1&b=2",
        route="node1",
        ssl_cert="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        ssl_cipher="TLS_AES_128_GCM_SHA256",
        ssl_session="0a1b2c",
        ssl_key_size=256,
        req_attributes=[("AJP_REMOTE_PORT", "54321"), ("AJP_LOCAL_ADDR", "127.0.0.1"),
                        ("JK_LB_ACTIVATION", "ACT")],
    )


# --- byte vectors from the spec -------------------------------------------------------------


def test_cping_packet_is_12_34_00_01_0a():
    assert ajp13.encode_cping() == bytes.fromhex("1234 0001 0a")
    assert ajp13.decode_server_message(b"\x0a") == CPing()


def test_cpong_packet_is_41_42_00_01_09():
    assert ajp13.encode_cpong() == bytes.fromhex("4142 0001 09")
    assert ajp13.decode_container_message(b"\x09") == CPong()


def test_end_response_carries_the_reuse_flag_byte():
    assert ajp13.encode_end_response(True) == bytes.fromhex("4142 0002 05 01")
    assert ajp13.encode_end_response(False) == bytes.fromhex("4142 0002 05 00")
    assert ajp13.decode_container_message(b"\x05\x01") == EndResponse(reuse=True)
    assert ajp13.decode_container_message(b"\x05\x00") == EndResponse(reuse=False)


def test_shutdown_packet_is_type_7_alone():
    assert ajp13.encode_shutdown() == bytes.fromhex("1234 0001 07")
    assert ajp13.decode_server_message(b"\x07") == Shutdown()


def test_get_body_chunk_carries_the_requested_length():
    assert ajp13.encode_get_body_chunk(8186) == bytes.fromhex("4142 0003 06 1ffa")
    assert ajp13.decode_container_message(bytes.fromhex("06 1ffa")) == GetBodyChunk(8186)


def test_body_packet_is_data_length_and_data_without_a_type_byte():
    assert ajp13.encode_body_chunk(b"abc") == bytes.fromhex("1234 0005 0003 616263")
    assert ajp13.decode_body_packet(bytes.fromhex("0003 616263")) == b"abc"


def test_empty_body_packet_marks_the_end_of_the_body():
    assert ajp13.encode_body_chunk(b"") == bytes.fromhex("1234 0000")
    assert ajp13.decode_body_packet(b"") == b""
    assert ajp13.decode_body_packet(b"\x00\x00") == b""


def test_send_body_chunk_is_length_data_and_a_trailing_nul():
    assert ajp13.encode_send_body_chunk(b"hi") == bytes.fromhex("4142 0006 03 0002 6869 00")
    assert ajp13.decode_container_message(bytes.fromhex("03 0002 6869 00")) == SendBodyChunk(b"hi")


def test_send_body_chunk_without_trailing_nul_is_accepted():
    assert ajp13.decode_container_message(bytes.fromhex("03 0002 6869")) == SendBodyChunk(b"hi")


def test_empty_send_body_chunk_is_a_flush():
    assert ajp13.encode_send_body_chunk(b"") == bytes.fromhex("4142 0004 03 0000 00")
    assert ajp13.decode_container_message(bytes.fromhex("03 0000 00")) == SendBodyChunk(b"")


def test_send_headers_sends_known_response_headers_as_codes():
    expected_payload = (
        b"\x04" + b"\x00\xc8" + s(b"OK") + b"\x00\x02"
        + b"\xa0\x01" + s(b"text/html;charset=UTF-8")
        + s(b"X-Powered-By") + s(b"pyhttpd")
    )
    msg = SendHeaders(200, "OK", [("Content-Type", "text/html;charset=UTF-8"),
                                  ("X-Powered-By", "pyhttpd")])
    packet = ajp13.encode_send_headers(msg)
    assert packet == MAGIC_TO_SERVER + struct.pack(">H", len(expected_payload)) + expected_payload
    assert ajp13.decode_container_message(expected_payload) == msg


def test_forward_request_matches_hand_written_bytes():
    expected_payload = (
        b"\x02\x02"
        + s(b"HTTP/1.1") + s(b"/index.jsp") + s(b"127.0.0.1") + s(b"127.0.0.1")
        + s(b"localhost") + b"\x00\x50" + b"\x00"
        + b"\x00\x02" + b"\xa0\x0b" + s(b"localhost") + s(b"X-Foo") + s(b"bar")
        + b"\x0c" + s(b"s3")
        + b"\x05" + s(b"a=1")
        + b"\x0a" + s(b"AJP_REMOTE_PORT") + s(b"1234")
        + b"\xff"
    )
    msg = ForwardRequest(
        method="GET", protocol="HTTP/1.1", req_uri="/index.jsp", remote_addr="127.0.0.1",
        remote_host="127.0.0.1", server_name="localhost", server_port=80, is_ssl=False,
        headers=[("host", "localhost"), ("X-Foo", "bar")], secret="s3", query_string="a=1",
        req_attributes=[("AJP_REMOTE_PORT", "1234")],
    )
    packet = ajp13.encode_forward_request(msg)
    assert packet == b"\x12\x34" + struct.pack(">H", len(expected_payload)) + expected_payload
    assert ajp13.decode_server_message(expected_payload) == msg


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "packet, message",
    [
        (ajp13.encode_send_headers(SendHeaders(404, "Not Found", [("Date", "x")])),
         SendHeaders(404, "Not Found", [("Date", "x")])),
        (ajp13.encode_send_body_chunk(b"\x00\xffdata"), SendBodyChunk(b"\x00\xffdata")),
        (ajp13.encode_get_body_chunk(0), GetBodyChunk(0)),
        (ajp13.encode_get_body_chunk(65535), GetBodyChunk(65535)),
        (ajp13.encode_end_response(True), EndResponse(True)),
        (ajp13.encode_end_response(False), EndResponse(False)),
        (ajp13.encode_cpong(), CPong()),
    ],
)
def test_every_container_message_round_trips(packet, message):
    assert packet[:2] == MAGIC_TO_SERVER
    assert container_round_trip(packet) == message


@pytest.mark.parametrize(
    "packet, message",
    [
        (ajp13.encode_forward_request(ForwardRequest()), ForwardRequest()),
        (ajp13.encode_cping(), CPing()),
        (ajp13.encode_shutdown(), Shutdown()),
    ],
)
def test_every_server_message_round_trips(packet, message):
    assert packet[:2] == MAGIC_TO_CONTAINER
    assert ajp13.decode_server_message(payload_of(packet)) == message


def test_forward_request_with_every_attribute_round_trips():
    msg = full_request()
    assert forward_round_trip(msg) == msg


def test_attributes_go_out_in_mod_jk_order_with_the_secret_first():
    payload = payload_of(ajp13.encode_forward_request(full_request()))
    tail = payload[payload.index(s(b"a=b")) + len(s(b"a=b")):]
    assert tail[0] == ajp13.SC_A_SECRET
    assert tail.index(b"\x05" + s(b"a=1&b=2")) < tail.index(b"\x06" + s(b"node1"))
    assert tail.endswith(b"\x0a" + s(b"JK_LB_ACTIVATION") + s(b"ACT") + b"\xff")


def test_ssl_key_size_is_sent_as_an_integer_not_a_string():
    payload = payload_of(ajp13.encode_forward_request(ForwardRequest(ssl_key_size=128)))
    assert payload.endswith(b"\x0b\x00\x80\xff")
    assert ajp13.decode_server_message(payload).ssl_key_size == 128


def test_repeated_request_attributes_keep_their_order():
    msg = ForwardRequest(req_attributes=[("A", "1"), ("B", "2"), ("A", "3")])
    assert forward_round_trip(msg).req_attributes == [("A", "1"), ("B", "2"), ("A", "3")]


@pytest.mark.parametrize("name, code", sorted(REQUEST_HEADER_CODES.items()))
def test_every_known_request_header_is_sent_as_its_code(name, code):
    payload = payload_of(ajp13.encode_forward_request(ForwardRequest(headers=[(name, "v")])))
    assert struct.pack(">H", code) + s(b"v") in payload
    assert name.encode() not in payload
    assert ajp13.decode_server_message(payload).headers == [(name, "v")]


def test_request_header_codes_cover_a001_to_a00e():
    assert sorted(REQUEST_HEADER_CODES.values()) == list(range(0xA001, 0xA00F))


def test_known_request_headers_match_case_insensitively_and_read_back_lower_case():
    msg = ForwardRequest(headers=[("User-Agent", "curl"), ("Content-Length", "0")])
    assert forward_round_trip(msg).headers == [("user-agent", "curl"), ("content-length", "0")]


def test_other_request_headers_travel_as_strings_with_their_case():
    msg = ForwardRequest(headers=[("X-Request-Id", "42"), ("Accept-Datetime", "now")])
    payload = payload_of(ajp13.encode_forward_request(msg))
    assert s(b"X-Request-Id") in payload
    assert ajp13.decode_server_message(payload).headers == msg.headers


@pytest.mark.parametrize("code, name", sorted(RESPONSE_HEADER_NAMES.items()))
def test_every_known_response_header_is_sent_as_its_code(code, name):
    payload = payload_of(ajp13.encode_send_headers(SendHeaders(200, "OK", [(name.upper(), "v")])))
    assert payload.endswith(b"\x00\x01" + struct.pack(">H", code) + s(b"v"))
    assert ajp13.decode_container_message(payload).headers == [(name, "v")]


def test_response_header_codes_cover_a001_to_a00b():
    assert sorted(RESPONSE_HEADER_NAMES) == list(range(0xA001, 0xA00C))


def test_empty_reason_is_sent_as_the_status_number():
    decoded = container_round_trip(ajp13.encode_send_headers(SendHeaders(204, "", [])))
    assert decoded == SendHeaders(204, "204", [])


# --- methods --------------------------------------------------------------------------------


def test_method_codes_run_from_options_to_mkactivity():
    assert METHOD_CODES["OPTIONS"] == 1
    assert METHOD_CODES["MKACTIVITY"] == 27
    assert sorted(METHOD_CODES.values()) == list(range(1, 28))


@pytest.mark.parametrize("method, code", sorted(METHOD_CODES.items()))
def test_every_known_method_is_sent_as_its_code(method, code):
    payload = payload_of(ajp13.encode_forward_request(ForwardRequest(method=method)))
    assert payload[1] == code
    assert payload.endswith(b"\xff") and method.encode() not in payload
    assert ajp13.decode_server_message(payload).method == method


@pytest.mark.parametrize("method", ["PATCH", "get", "BREW"])
def test_other_methods_travel_as_the_stored_method_attribute(method):
    payload = payload_of(ajp13.encode_forward_request(ForwardRequest(method=method)))
    assert payload[1] == ajp13.SC_M_JK_STORED
    assert payload.endswith(b"\x0d" + s(method.encode()) + b"\xff")
    assert ajp13.decode_server_message(payload).method == method


@pytest.mark.parametrize(
    "method_byte, reason",
    [(0xFF, "without a stored_method attribute"), (28, "method code 28"), (0, "method code 0")],
)
def test_bad_method_byte_is_a_protocol_error(method_byte, reason):
    payload = bytearray(payload_of(ajp13.encode_forward_request(ForwardRequest())))
    payload[1] = method_byte
    with pytest.raises(AjpProtocolError, match=reason):
        ajp13.decode_server_message(bytes(payload))


def test_stored_method_attribute_overrides_the_method_byte():
    payload = payload_of(ajp13.encode_forward_request(ForwardRequest(method="GET")))
    payload = payload[:-1] + b"\x0d" + s(b"PATCH") + b"\xff"
    assert ajp13.decode_server_message(payload).method == "PATCH"


def test_empty_method_cannot_be_encoded():
    with pytest.raises(AjpError):
        ajp13.encode_forward_request(ForwardRequest(method=""))


# --- strings --------------------------------------------------------------------------------


def test_null_string_reads_as_empty():
    payload = (b"\x02\x02" + s(b"HTTP/1.1") + s(b"/") + s(b"127.0.0.1") + b"\xff\xff"
               + s(b"h") + b"\x00\x50\x00\x00\x00\xff")
    assert ajp13.decode_server_message(payload).remote_host == ""


def test_utf8_bytes_read_as_text():
    payload = payload_of(ajp13.encode_forward_request(ForwardRequest(req_uri="/caf\u00e9")))
    assert s("/caf\u00e9".encode()) in payload
    assert ajp13.decode_server_message(payload).req_uri == "/caf\u00e9"


def test_non_utf8_bytes_survive_a_decode_and_encode():
    latin1 = b"\x04\x00\xc8" + s(b"OK") + b"\x00\x01" + s(b"X-Name") + s(b"Jos\xe9")
    msg = ajp13.decode_container_message(latin1)
    assert payload_of(ajp13.encode_send_headers(msg)) == latin1


def test_text_that_cannot_be_encoded_is_an_ajp_error():
    with pytest.raises(AjpError):
        ajp13.encode_forward_request(ForwardRequest(req_uri="/\ud800"))


# --- sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8191, 65537, 0, -1])
def test_max_packet_size_outside_8k_to_64k_is_rejected(size):
    with pytest.raises(AjpError, match="max_packet_size"):
        ajp13.check_max_packet_size(size)
    with pytest.raises(AjpError):
        PacketReader(MAGIC_TO_CONTAINER, size)
    with pytest.raises(AjpError):
        ajp13.encode_forward_request(ForwardRequest(), size)


@pytest.mark.parametrize("size, body_max, response_max", [(8192, 8186, 8184), (65536, 65530, 65528)])
def test_chunk_limits_follow_max_packet_size(size, body_max, response_max):
    assert ajp13.max_body_chunk_size(size) == body_max
    assert ajp13.max_send_body_chunk_size(size) == response_max
    assert len(ajp13.encode_body_chunk(b"x" * body_max, size)) == size
    assert len(ajp13.encode_send_body_chunk(b"x" * response_max, size)) == size
    with pytest.raises(AjpError):
        ajp13.encode_body_chunk(b"x" * (body_max + 1), size)
    with pytest.raises(AjpError):
        ajp13.encode_send_body_chunk(b"x" * (response_max + 1), size)


def test_default_chunk_limits_are_for_8k_packets():
    assert ajp13.max_body_chunk_size() == 8186
    assert ajp13.max_send_body_chunk_size() == 8184


def test_forward_request_that_does_not_fit_is_an_ajp_error():
    msg = ForwardRequest(headers=[("cookie", "x" * 9000)])
    with pytest.raises(AjpError, match="max_packet_size 8192"):
        ajp13.encode_forward_request(msg)
    assert forward_round_trip(msg, 16384) == msg


def test_forward_request_filling_the_packet_exactly_fits():
    empty = len(ajp13.encode_forward_request(ForwardRequest(headers=[("cookie", "")])))
    msg = ForwardRequest(headers=[("cookie", "x" * (8192 - empty))])
    assert len(ajp13.encode_forward_request(msg)) == 8192
    msg.headers[0] = ("cookie", "x" * (8193 - empty))
    with pytest.raises(AjpError):
        ajp13.encode_forward_request(msg)


def test_send_headers_that_do_not_fit_are_an_ajp_error():
    with pytest.raises(AjpError):
        ajp13.encode_send_headers(SendHeaders(200, "OK", [("Set-Cookie", "x" * 8200)]))


def test_header_name_too_long_to_tell_from_a_code_is_an_ajp_error():
    msg = ForwardRequest(headers=[("x" * 0xA000, "v")])
    with pytest.raises(AjpError, match="header name"):
        ajp13.encode_forward_request(msg, 65536)


@pytest.mark.parametrize("msg", [ForwardRequest(server_port=65536), SendHeaders(status=-1),
                                 ForwardRequest(ssl_key_size=70000)])
def test_integers_beyond_16_bits_are_an_ajp_error(msg):
    encode = (ajp13.encode_forward_request if isinstance(msg, ForwardRequest)
              else ajp13.encode_send_headers)
    with pytest.raises(AjpError, match="16 bits"):
        encode(msg)


# --- framing --------------------------------------------------------------------------------


def test_packet_reader_frames_packets_fed_a_byte_at_a_time():
    stream = ajp13.encode_forward_request(full_request()) + ajp13.encode_body_chunk(b"body")
    stream += ajp13.encode_body_chunk(b"")
    reader = PacketReader(MAGIC_TO_CONTAINER)
    payloads = []
    for i in range(len(stream)):
        reader.feed(stream[i:i + 1])
        payloads.extend(reader)
    assert reader.pending == 0
    assert ajp13.decode_server_message(payloads[0]) == full_request()
    assert [ajp13.decode_body_packet(p) for p in payloads[1:]] == [b"body", b""]


def test_packet_reader_returns_several_packets_from_one_feed():
    reader = PacketReader(MAGIC_TO_SERVER)
    reader.feed(ajp13.encode_send_body_chunk(b"a") + ajp13.encode_end_response() + b"AB\x00")
    messages = [ajp13.decode_container_message(p) for p in reader]
    assert messages == [SendBodyChunk(b"a"), EndResponse(True)]
    assert reader.next_packet() is None
    assert reader.pending == 3


def test_packet_reader_rejects_a_packet_in_the_wrong_direction():
    reader = PacketReader(MAGIC_TO_SERVER)
    reader.feed(ajp13.encode_cping())
    with pytest.raises(AjpProtocolError, match="magic 1234"):
        reader.next_packet()


def test_packet_reader_rejects_an_oversized_length_before_the_payload_arrives():
    reader = PacketReader(MAGIC_TO_CONTAINER, 8192)
    reader.feed(b"\x12\x34" + struct.pack(">H", 8189))
    with pytest.raises(AjpProtocolError, match="exceeds max_packet_size"):
        reader.next_packet()


def test_packet_reader_accepts_a_packet_of_exactly_max_packet_size():
    packet = ajp13.encode_body_chunk(b"y" * 65530, 65536)
    reader = PacketReader(MAGIC_TO_CONTAINER, 65536)
    reader.feed(packet)
    assert ajp13.decode_body_packet(reader.next_packet()) == b"y" * 65530


def test_packet_reader_keeps_failing_after_a_protocol_error():
    reader = PacketReader(MAGIC_TO_CONTAINER)
    reader.feed(b"GET / HTTP/1.1\r\n")
    for _ in range(2):
        with pytest.raises(AjpProtocolError):
            reader.next_packet()


def test_packet_reader_needs_a_known_magic():
    with pytest.raises(ValueError):
        PacketReader(b"XY")


# --- malformed input ------------------------------------------------------------------------


def valid_forward_payload() -> bytes:
    return payload_of(ajp13.encode_forward_request(full_request()))


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "empty"),
        (b"\x03", "unexpected message type 3"),
        (b"\x0a\x00", "CPing of 2 bytes"),
        (valid_forward_payload()[:-1], "are_done"),
        (valid_forward_payload() + b"\x00", "unexpected bytes"),
        (valid_forward_payload()[:-1] + b"\x0e\xff", "attribute code 0x0e"),
        (valid_forward_payload()[:20], "truncated"),
        (b"\x02\x02" + b"\x00\x08HTTP/1.1X", "not NUL-terminated"),
        (b"\x02\x02" + s(b"HTTP/1.1") + s(b"/") + s(b"a") + s(b"b") + s(b"c")
         + b"\x00\x50\x00\x00\x01\xa0\x0f" + s(b"v") + b"\xff", "header code 0xa00f"),
        (b"\x02\x02" + s(b"HTTP/1.1") + s(b"/") + s(b"a") + s(b"b") + s(b"c")
         + b"\x00\x50\x00\x00\x01\xff\xff" + s(b"v") + b"\xff", "null header name"),
        (b"\x02\x02" + s(b"HTTP/1.1") + s(b"/") + s(b"a") + s(b"b") + s(b"c")
         + b"\x00\x50\x00\xff\xff", "truncated"),
    ],
)
def test_malformed_server_messages_are_protocol_errors(payload, reason):
    with pytest.raises(AjpProtocolError, match=reason):
        ajp13.decode_server_message(payload)


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "empty"),
        (b"\x02", "unexpected message type 2"),
        (b"\x09\x00", "CPong of 2 bytes"),
        (b"\x05", "truncated"),
        (b"\x05\x01\x00", "unexpected bytes"),
        (b"\x06\x10", "truncated"),
        (b"\x06\x10\x00\x00", "unexpected bytes"),
        (b"\x03\x00\x05abc", "truncated"),
        (b"\x03\x00\x01a\x00\x00", "unexpected bytes"),
        (b"\x04\x00\xc8" + s(b"OK") + b"\x00\x01\xa0\x0c" + s(b"v"), "header code 0xa00c"),
        (b"\x04\x00\xc8" + s(b"OK") + b"\x00\x02\xa0\x01" + s(b"v"), "truncated"),
        (b"\x04\x00\xc8" + s(b"OK") + b"\x00\x00\x00", "unexpected bytes"),
    ],
)
def test_malformed_container_messages_are_protocol_errors(payload, reason):
    with pytest.raises(AjpProtocolError, match=reason):
        ajp13.decode_container_message(payload)


@pytest.mark.parametrize("payload", [b"\x00", b"\x00\x05abc", b"\x00\x01ab"])
def test_malformed_body_packets_are_protocol_errors(payload):
    with pytest.raises(AjpProtocolError):
        ajp13.decode_body_packet(payload)


def test_protocol_errors_are_value_errors():
    assert issubclass(AjpProtocolError, AjpError)
    assert issubclass(AjpError, ValueError)


# --- content length -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, expected",
    [
        ([], None),
        ([("content-length", "0")], 0),
        ([("Content-Length", " 1234 ")], 1234),
        ([("content-length", "5"), ("content-length", "5")], 5),
    ],
)
def test_content_length_is_none_when_absent(headers, expected):
    assert ForwardRequest(headers=headers).content_length == expected


@pytest.mark.parametrize(
    "headers",
    [[("content-length", "-1")], [("content-length", "1e3")], [("content-length", "\u0661")],
     [("content-length", "1"), ("content-length", "2")]],
)
def test_bad_or_conflicting_content_length_is_a_protocol_error(headers):
    with pytest.raises(AjpProtocolError):
        _ = ForwardRequest(headers=headers).content_length


# --- properties -----------------------------------------------------------------------------

text = st.text(max_size=30)
maybe_text = st.none() | text
header_names = st.sampled_from(sorted(REQUEST_HEADER_CODES)).map(str.title) | text
forward_requests = st.builds(
    ForwardRequest,
    method=st.sampled_from(sorted(METHOD_CODES)) | st.text(min_size=1, max_size=20),
    protocol=text,
    req_uri=text,
    remote_addr=text,
    remote_host=text,
    server_name=text,
    server_port=st.integers(0, 65535),
    is_ssl=st.booleans(),
    headers=st.lists(st.tuples(header_names, text), max_size=10),
    secret=maybe_text,
    context=maybe_text,
    servlet_path=maybe_text,
    remote_user=maybe_text,
    auth_type=maybe_text,
    query_string=maybe_text,
    route=maybe_text,
    ssl_cert=maybe_text,
    ssl_cipher=maybe_text,
    ssl_session=maybe_text,
    ssl_key_size=st.none() | st.integers(0, 65535),
    req_attributes=st.lists(st.tuples(text, text), max_size=5),
)


def as_received(name: str) -> str:
    return name.lower() if name.lower() in REQUEST_HEADER_CODES else name


@settings(max_examples=300)
@given(forward_requests)
def test_random_forward_requests_round_trip(msg):
    decoded = forward_round_trip(msg, 65536)
    assert decoded.headers == [(as_received(n), v) for n, v in msg.headers]
    decoded.headers = msg.headers
    assert decoded == msg


@settings(max_examples=200)
@given(st.integers(100, 999), st.text(min_size=1, max_size=30),
       st.lists(st.tuples(st.sampled_from(sorted(RESPONSE_HEADER_NAMES.values())) | text, text),
                max_size=10))
def test_random_send_headers_round_trip(status, reason, headers):
    decoded = container_round_trip(ajp13.encode_send_headers(SendHeaders(status, reason, headers)))
    canonical = {name.lower(): name for name in RESPONSE_HEADER_NAMES.values()}
    assert decoded == SendHeaders(status, reason, [(canonical.get(n.lower(), n), v)
                                                   for n, v in headers])


def decodes_or_raises_protocol_error(decode, payload: bytes) -> None:
    try:
        decode(payload)
    except AjpProtocolError:
        pass


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_protocol_error(payload):
    decodes_or_raises_protocol_error(ajp13.decode_server_message, payload)
    decodes_or_raises_protocol_error(ajp13.decode_container_message, payload)
    decodes_or_raises_protocol_error(ajp13.decode_body_packet, payload)
    decodes_or_raises_protocol_error(ajp13.decode_server_message, b"\x02" + payload)
    decodes_or_raises_protocol_error(ajp13.decode_container_message, b"\x04" + payload)


def mutate(data: st.DataObject, payload: bytes) -> bytes:
    buf = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf)))
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if op == "insert" or not buf:
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=3))
        elif op == "flip":
            buf[min(pos, len(buf) - 1)] = data.draw(st.integers(0, 255))
        elif op == "delete":
            del buf[min(pos, len(buf) - 1)]
        else:
            del buf[pos:]
    return bytes(buf)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_packets_decode_or_raise_protocol_error(data):
    server_payload = valid_forward_payload()
    container_payload = payload_of(ajp13.encode_send_headers(
        SendHeaders(302, "Found", [("Location", "/x"), ("X-A", "b")])))
    decodes_or_raises_protocol_error(ajp13.decode_server_message, mutate(data, server_payload))
    decodes_or_raises_protocol_error(ajp13.decode_container_message,
                                     mutate(data, container_payload))


@settings(max_examples=200)
@given(st.binary(max_size=200), st.lists(st.integers(1, 50), max_size=20))
def test_packet_reader_on_random_bytes_frames_or_raises_protocol_error(stream, cuts):
    reader = PacketReader(MAGIC_TO_CONTAINER)
    pos = 0
    try:
        for cut in [*cuts, len(stream)]:
            reader.feed(stream[pos:pos + cut])
            pos += cut
            for payload in reader:
                assert len(payload) <= 8192 - 4
    except AjpProtocolError:
        pass
