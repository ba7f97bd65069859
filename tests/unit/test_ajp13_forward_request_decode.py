"""The codec's one-pass Forward Request reader gives what its full decoder gives, for any bytes."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.mod_jk.ajp13 import (
    FORWARD_REQUEST,
    AjpProtocolError,
    ForwardRequest,
    _decode_forward_request_fully,
    decode_server_message,
    encode_forward_request,
)
from tests.unit.test_ajp13 import forward_requests, s

# decode_server_message() reads a Forward Request in one pass when it can, else fully.
decode_forward_request = decode_server_message


def decode_fully(data: bytes):  # noqa: ANN201
    """decode_server_message() as it would be without the one-pass reader."""
    if data[:1] == bytes([FORWARD_REQUEST]):
        return _decode_forward_request_fully(data)
    return decode_server_message(data)


def payload(msg: ForwardRequest) -> bytes:
    return encode_forward_request(msg, 65536)[4:]


def outcome(decode, data: bytes):  # noqa: ANN001
    """What decoding `data` gives: the message, or the protocol error's text."""
    try:
        return decode(data)
    except AjpProtocolError as e:
        return ("AjpProtocolError", str(e))


def mod_jk_request() -> ForwardRequest:
    """A request as mod_jk forwards a plain GET."""
    return ForwardRequest(
        method="GET", protocol="HTTP/1.1", req_uri="/hello", remote_addr="127.0.0.1",
        remote_host="", server_name="localhost", server_port=8080,
        headers=[("host", "localhost:8080"), ("content-length", "0"), ("X-Trace", "1")],
        secret="s3cr3t", query_string="a=1",
        req_attributes=[("AJP_LOCAL_ADDR", "127.0.0.1"), ("AJP_REMOTE_PORT", "45678"), ("JK_LB_ACTIVATION", "ACT")],
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(forward_requests)
def test_every_forward_request_decodes_as_the_codec_decodes_it(msg):
    data = payload(msg)
    assert decode_forward_request(data) == decode_fully(data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(forward_requests, st.integers(0, 400), st.integers(0, 255), st.sampled_from(["replace", "cut", "insert"]))
def test_damaged_packets_give_the_codecs_message_or_error(msg, where, byte, how):
    data = payload(msg)
    at = where % (len(data) + 1)
    if how == "replace" and at < len(data):
        data = data[:at] + bytes([byte]) + data[at + 1 :]
    elif how == "cut":
        data = data[:at]
    else:
        data = data[:at] + bytes([byte]) + data[at:]
    assert outcome(decode_forward_request, data) == outcome(decode_fully, data)


def test_mod_jk_get_reads_every_field():
    msg = mod_jk_request()
    assert decode_forward_request(payload(msg)) == msg


def test_stored_method_is_read_back_as_its_name():
    msg = mod_jk_request()
    msg.method = "PATCH"
    assert decode_forward_request(payload(msg)).method == "PATCH"


def test_bytes_that_are_not_utf8_are_kept_as_surrogates():
    data = payload(mod_jk_request()).replace(s(b"/hello"), s(b"/h\xffllo"))
    assert decode_forward_request(data).req_uri == "/h\udcffllo"


def test_mod_jk_null_remote_host_reads_as_empty():
    data = payload(mod_jk_request()).replace(s(b"127.0.0.1") + s(b""), s(b"127.0.0.1") + b"\xff\xff")
    assert b"\xff\xff" in data
    assert decode_forward_request(data).remote_host == ""


def test_null_header_value_and_attribute_read_as_empty():
    data = payload(mod_jk_request()).replace(s(b"1"), b"\xff\xff").replace(s(b"ACT"), b"\xff\xff")
    decoded = decode_forward_request(data)
    assert (decoded.headers[2], decoded.req_attributes[2]) == (("X-Trace", ""), ("JK_LB_ACTIVATION", ""))


def test_ssl_key_size_is_an_integer():
    msg = mod_jk_request()
    msg.is_ssl, msg.ssl_cipher, msg.ssl_key_size = True, "TLS_AES_128_GCM_SHA256", 256
    decoded = decode_forward_request(payload(msg))
    assert (decoded.is_ssl, decoded.ssl_cipher, decoded.ssl_key_size) == (True, "TLS_AES_128_GCM_SHA256", 256)


def test_a_repeated_string_attribute_keeps_its_last_value():
    data = payload(mod_jk_request())
    data = data[:-1] + b"\x06" + s(b"node1") + b"\x06" + s(b"node2") + b"\xff"
    assert decode_forward_request(data).route == "node2"


def test_bytes_after_the_attributes_are_a_protocol_error():
    with pytest.raises(AjpProtocolError, match="1 unexpected bytes after Forward Request"):
        decode_forward_request(payload(mod_jk_request()) + b"\x00")


def test_a_truncated_packet_is_a_protocol_error():
    with pytest.raises(AjpProtocolError, match="truncated"):
        decode_forward_request(payload(mod_jk_request())[:40])


def test_an_unknown_method_code_is_a_protocol_error():
    data = bytearray(payload(mod_jk_request()))
    data[1] = 0xEE
    with pytest.raises(AjpProtocolError, match="unknown method code 238"):
        decode_forward_request(bytes(data))
