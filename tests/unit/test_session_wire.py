"""The replication wire format: framing, HMAC, replay protection, schemas, hostile input."""

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.mod_session_repl.session import Change, Delta
from modules.mod_session_repl.store import SessionStore
from modules.mod_session_repl.wire import (
    HEADER_LEN,
    MAGIC,
    TAG_LEN,
    AuthError,
    Frame,
    FrameError,
    FrameReader,
    FrameWriter,
    MessageType,
    ReplayError,
    WireError,
    check_body,
    transfer_chunks,
)

SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
SID = "0123456789ABCDEF0123456789ABCDEF.node1"
NONCE_A = bytes(range(16))
NONCE_B = bytes(range(16, 32))


def hello(nonce: bytes) -> dict:
    return {
        "cluster": "c1",
        "address": "127.0.0.1:4001",
        "incarnation": 7,
        "started": 1_700_000_000_000,
        "nonce": nonce.hex(),
        "ts": 1_700_000_000_500,
    }


DELTA_BODY = {
    "id": SID,
    "version": 3,
    "delta": Delta(changes=(Change("set", "cart", ["a", {"q": 1}]),), accessed=True).to_dict(),
    "ack": True,
}


def linked_pair(secret=SECRET, reader_secret=None):
    """node1's writer and node2's reader after the HELLO exchange (node2's nonce is NONCE_B)."""
    writer = FrameWriter("node1", secret)
    reader = FrameReader(reader_secret or secret, nonce=NONCE_B)
    assert (
        reader.feed(writer.encode(MessageType.HELLO, hello(NONCE_A)))[0].type is MessageType.HELLO
    )
    writer.peer_nonce = NONCE_B
    return writer, reader


# --- round trips -------------------------------------------------------------------------


def test_cluster_frames_round_trip():
    writer, reader = linked_pair()
    bodies = [
        (MessageType.PING, {"ts": 5}),
        (MessageType.DELTA, DELTA_BODY),
        (MessageType.ACK, {"seq": 2, "result": "applied"}),
        (MessageType.INVALIDATE, {"id": SID, "ack": False}),
        (MessageType.EXPIRE, {"ids": [SID]}),
        (MessageType.ACCESSED, {"ids": [SID, SID]}),
        (MessageType.GET_ALL_SESSIONS, {}),
        (MessageType.ALL_SESSION_DATA, {"sessions": [{"id": SID}], "chunk": 0, "ack": True}),
        (MessageType.TRANSFER_COMPLETE, {"chunks": 1, "sessions": 1}),
        (MessageType.CHANGE_SESSION_ID, {"old": SID, "new": SID[:-1] + "2"}),
        (MessageType.PULL, {"ids": [SID]}),
    ]
    data = b"".join(writer.encode(t, b) for t, b in bodies)
    frames = reader.feed(data)
    assert [(f.type, f.body) for f in frames] == bodies
    assert [f.seq for f in frames] == list(range(2, 2 + len(bodies)))
    assert {f.sender for f in frames} == {"node1"}
    assert reader.buffered == 0


def test_delta_payload_survives_the_wire_and_applies():
    writer, reader = linked_pair()
    (frame,) = reader.feed(writer.encode(MessageType.DELTA, DELTA_BODY))
    store = SessionStore("node2")
    store.create(SID, 0.0, origin="node1")
    delta = Delta.from_dict(frame.body["delta"])
    store.apply_delta(frame.body["id"], delta, frame.body["version"], 0.0, frame.sender)
    assert store.get(SID).attributes == {"cart": ["a", {"q": 1}]}


def test_local_frames_round_trip_without_a_tag():
    writer = FrameWriter("", None)
    reader = FrameReader(None)
    bodies = [
        (MessageType.GET, {"id": SID, "known_version": None}),
        (MessageType.CREATE, {"id": SID, "max_inactive": 60}),
        (MessageType.COMMIT, {"id": SID, "base": 2, "delta": {"accessed": True}, "sync": True}),
        (MessageType.INVALIDATE, {"id": SID, "sync": False}),
        (MessageType.CHANGE_SESSION_ID, {"old": SID, "new": SID[:-1] + "2"}),
        (MessageType.STATUS, {}),
        (MessageType.REPLY, {"re": 1, "ok": True, "session": None, "version": 4}),
    ]
    data = b"".join(writer.encode(t, b) for t, b in bodies)
    assert len(writer.encode(MessageType.STATUS, {})) == HEADER_LEN + 2
    assert [(f.type, f.body) for f in reader.feed(data)] == bodies


def test_frames_split_at_every_byte_are_reassembled():
    writer, reader = linked_pair()
    data = writer.encode(MessageType.DELTA, DELTA_BODY) + writer.encode(MessageType.PING, {})
    frames = []
    for i in range(len(data)):
        frames += reader.feed(data[i : i + 1])
    assert [f.type for f in frames] == [MessageType.DELTA, MessageType.PING]


def test_unicode_values_round_trip():
    writer, reader = linked_pair()
    body = {**DELTA_BODY, "delta": {"changes": [["set", "name", "Zoë ✓ 名前"]]}}
    (frame,) = reader.feed(writer.encode(MessageType.DELTA, body))
    assert frame.body == body


# --- authentication ----------------------------------------------------------------------


def test_tampered_frame_is_an_auth_error_at_every_byte_of_sender_payload_and_tag():
    writer, _ = linked_pair()
    frame = writer.encode(MessageType.DELTA, DELTA_BODY)
    for i in range(HEADER_LEN, len(frame)):
        _, reader = linked_pair()
        tampered = bytearray(frame)
        tampered[i] ^= 0x01
        with pytest.raises(AuthError):
            reader.feed(bytes(tampered))


def test_tampered_header_is_rejected():
    writer, _ = linked_pair()
    frame = writer.encode(MessageType.DELTA, DELTA_BODY)
    for i in range(HEADER_LEN):
        _, reader = linked_pair()
        tampered = bytearray(frame)
        tampered[i] ^= 0x01
        # A length made larger waits for more bytes, so send more: the tag is then wrong.
        with pytest.raises(WireError):
            reader.feed(bytes(tampered) + bytes(1 << 17))


def test_wrong_secret_is_an_auth_error():
    writer = FrameWriter("node1", OTHER_SECRET)
    reader = FrameReader(SECRET, nonce=NONCE_B)
    with pytest.raises(AuthError, match="HMAC"):
        reader.feed(writer.encode(MessageType.HELLO, hello(NONCE_A)))


def test_previous_secret_is_accepted_during_rotation():
    writer = FrameWriter("node1", OTHER_SECRET)
    reader = FrameReader(SECRET, previous_secret=OTHER_SECRET, nonce=NONCE_B)
    assert reader.feed(writer.encode(MessageType.HELLO, hello(NONCE_A)))


def test_untagged_frame_on_a_cluster_connection_is_an_auth_error():
    header = struct.pack(">4sBBBBQ16sI", MAGIC, 1, MessageType.PING, 0, 5, 1, bytes(16), 2)
    with pytest.raises(AuthError, match="no HMAC"):
        FrameReader(SECRET).feed(header + b"node1{}" + bytes(TAG_LEN))


def test_tagged_frame_on_a_local_connection_is_a_frame_error():
    cluster = FrameWriter("node1", SECRET)
    with pytest.raises(FrameError):
        FrameReader(None).feed(cluster.encode(MessageType.HELLO, hello(NONCE_A)))


def test_reader_stays_failed_after_an_error():
    writer, reader = linked_pair()
    good = writer.encode(MessageType.PING, {})
    with pytest.raises(FrameError):
        reader.feed(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(FrameError):
        reader.feed(good)


# --- replay ------------------------------------------------------------------------------


def test_frame_replayed_on_the_same_connection_is_rejected():
    writer, reader = linked_pair()
    frame = writer.encode(MessageType.DELTA, DELTA_BODY)
    reader.feed(frame)
    with pytest.raises(ReplayError):
        reader.feed(frame)


def test_frame_replayed_on_another_connection_is_rejected():
    writer, _ = linked_pair()
    recorded = writer.encode(MessageType.DELTA, DELTA_BODY)
    # A new connection: the receiver's new HELLO nonce differs from the recorded link.
    replaying = FrameWriter("node1", SECRET)
    reader = FrameReader(SECRET, nonce=bytes(16 * [9]))
    reader.feed(replaying.encode(MessageType.HELLO, hello(NONCE_A)))
    with pytest.raises(ReplayError):
        reader.feed(recorded)


def test_first_cluster_frame_must_be_hello():
    writer = FrameWriter("node1", SECRET)
    writer.peer_nonce = NONCE_B
    with pytest.raises(FrameError, match="before HELLO"):
        FrameReader(SECRET, nonce=NONCE_B).feed(writer.encode(MessageType.PING, {}))


def test_second_hello_on_a_connection_is_rejected():
    writer, reader = linked_pair()
    with pytest.raises(FrameError, match="second HELLO"):
        reader.feed(writer.encode(MessageType.HELLO, hello(NONCE_A)))


def test_writer_refuses_data_frames_before_the_peers_hello():
    with pytest.raises(FrameError, match="HELLO"):
        FrameWriter("node1", SECRET).encode(MessageType.PING, {})


def test_sender_may_not_change_on_a_connection():
    _, reader = linked_pair()
    impostor = FrameWriter("node3", SECRET)
    impostor.seq = 10
    impostor.peer_nonce = NONCE_B
    with pytest.raises(FrameError, match="sender changed"):
        reader.feed(impostor.encode(MessageType.PING, {}))


# --- limits and schemas ------------------------------------------------------------------


def test_bad_magic_is_a_frame_error_from_the_first_byte():
    with pytest.raises(FrameError, match="magic"):
        FrameReader(SECRET).feed(b"X")
    with pytest.raises(FrameError, match="magic"):
        FrameReader(None).feed(b"PYSX")


def test_oversized_length_is_rejected_before_the_payload_arrives():
    header = struct.pack(">4sBBBBQ16sI", MAGIC, 1, MessageType.PING, 1, 5, 1, bytes(16), 1 << 30)
    reader = FrameReader(SECRET, max_frame=1 << 20)
    with pytest.raises(FrameError, match="exceeds"):
        reader.feed(header)


def test_writer_refuses_a_payload_over_the_limit():
    writer = FrameWriter("", None, max_frame=100)
    with pytest.raises(FrameError, match="exceeds"):
        writer.encode(MessageType.REPLY, {"re": 1, "ok": True, "error": "x" * 200})


def test_unknown_version_type_and_flags_are_frame_errors():
    base = FrameWriter("", None).encode(MessageType.STATUS, {})
    for offset, value, message in ((4, 2, "version"), (5, 200, "type"), (6, 0x80, "flags")):
        damaged = bytearray(base)
        damaged[offset] = value
        with pytest.raises(FrameError, match=message):
            FrameReader(None).feed(bytes(damaged))


def test_cluster_message_on_the_local_socket_is_refused():
    raw = bytearray(FrameWriter("", None).encode(MessageType.STATUS, {}))
    raw[5] = MessageType.DELTA
    with pytest.raises(FrameError, match="not allowed"):
        FrameReader(None).feed(bytes(raw))


@pytest.mark.parametrize(
    "msg_type, body, message",
    [
        (MessageType.DELTA, {"id": SID, "version": 1}, "'delta' is missing"),
        (MessageType.DELTA, {"id": "../x", "version": 1, "delta": {}}, "session id"),
        (MessageType.DELTA, {"id": SID, "version": -1, "delta": {}}, "non-negative"),
        (MessageType.DELTA, {"id": SID, "version": True, "delta": {}}, "non-negative"),
        (MessageType.DELTA, {"id": SID, "version": 1, "delta": {}, "x": 1}, "unexpected"),
        (MessageType.EXPIRE, {"ids": [SID, "bad"]}, "list of session ids"),
        (MessageType.HELLO, {**hello(NONCE_A), "nonce": "zz"}, "hex"),
        (MessageType.ACK, [], "not a JSON object"),
    ],
)
def test_body_that_breaks_the_schema_is_a_frame_error(msg_type, body, message):
    with pytest.raises(FrameError, match=message):
        check_body(msg_type, body, local=False)


def test_schema_is_checked_on_receipt_too():
    payload = json.dumps({"id": "not an id", "version": 1, "delta": {}}).encode()
    header = struct.pack(
        ">4sBBBBQ16sI", MAGIC, 1, MessageType.COMMIT, 0, 0, 1, bytes(16), len(payload)
    )
    with pytest.raises(FrameError, match="session id"):
        FrameReader(None).feed(header + payload)


@pytest.mark.parametrize(
    "payload",
    [b"[1, 2]", b"{bad json", b"\xff\xfe", b'{"re": NaN, "ok": true}', b"[" * 100_000],
)
def test_payload_that_is_not_a_json_object_is_a_frame_error(payload):
    header = struct.pack(
        ">4sBBBBQ16sI", MAGIC, 1, MessageType.REPLY, 0, 0, 1, bytes(16), len(payload)
    )
    with pytest.raises(FrameError):
        FrameReader(None, max_frame=1 << 20).feed(header + payload)


def test_short_cluster_secret_is_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        FrameWriter("node1", b"short")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        FrameReader(SECRET, previous_secret=b"")


def test_invalid_member_id_is_refused_by_the_writer():
    with pytest.raises(ValueError):
        FrameWriter("node 1", SECRET)
    with pytest.raises(ValueError):
        FrameWriter("", SECRET)


# --- state transfer chunks ---------------------------------------------------------------


def test_transfer_chunks_respect_count_and_size():
    records = [{"id": f"{i:032X}", "attributes": {"x": "y" * 100}} for i in range(25)]
    chunks = list(transfer_chunks(records, max_bytes=1000, max_sessions=10))
    assert [r for c in chunks for r in c] == records
    assert all(len(c) <= 10 for c in chunks)
    assert all(len(json.dumps(c, separators=(",", ":"))) <= 1000 for c in chunks)
    big = [{"id": "A" * 32, "attributes": {"x": "y" * 5000}}]
    assert list(transfer_chunks(big, max_bytes=1000)) == [big]
    assert list(transfer_chunks([])) == []


def test_a_full_state_transfer_goes_over_the_wire():
    donor = SessionStore("node1")
    for i in range(30):
        donor.commit(f"{i:032X}.node1", Delta(changes=(Change("set", "n", i),), created=0.0), 0.0)
    writer, reader = linked_pair()
    data = b""
    chunks = list(transfer_chunks(donor.snapshot(0.0), max_bytes=2000))
    for number, chunk in enumerate(chunks):
        data += writer.encode(MessageType.ALL_SESSION_DATA, {"sessions": chunk, "chunk": number})
    data += writer.encode(
        MessageType.TRANSFER_COMPLETE, {"chunks": len(chunks), "sessions": len(donor)}
    )
    joiner = SessionStore("node2")
    frames = reader.feed(data)
    for frame in frames[:-1]:
        joiner.load_snapshot(frame.body["sessions"], 0.0)
    assert frames[-1].body == {"chunks": len(chunks), "sessions": 30}
    assert len(chunks) > 1
    assert sorted(joiner.ids()) == sorted(donor.ids())


# --- hostile input -----------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.booleans())
def test_random_bytes_give_only_frame_or_auth_errors(data, local):
    reader = FrameReader(None if local else SECRET, nonce=None if local else NONCE_B)
    try:
        frames = reader.feed(data)
    except (FrameError, AuthError):
        return
    assert all(isinstance(f, Frame) for f in frames)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_and_truncated_frames_give_only_frame_or_auth_errors(data):
    local = data.draw(st.booleans())
    if local:
        writer, reader = FrameWriter("", None), FrameReader(None)
        good = writer.encode(
            MessageType.COMMIT, {"id": SID, "base": 1, "delta": DELTA_BODY["delta"]}
        )
    else:
        writer, reader = linked_pair()
        good = writer.encode(MessageType.DELTA, DELTA_BODY)
    raw = bytearray(good)
    for _ in range(data.draw(st.integers(0, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        frames = reader.feed(bytes(raw))
    except (FrameError, AuthError):
        return
    for frame in frames:
        check_body(frame.type, frame.body, local=local)
    if len(raw) < len(good):
        assert frames == []


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=5), inner, max_size=4)
            ),
            max_leaves=20,
        ),
        max_size=5,
    )
)
def test_any_json_attributes_round_trip_in_a_delta(attributes):
    delta = Delta(changes=tuple(Change("set", k, v) for k, v in attributes.items()))
    writer, reader = linked_pair()
    body = {"id": SID, "version": 1, "delta": delta.to_dict()}
    (frame,) = reader.feed(writer.encode(MessageType.DELTA, body))
    assert Delta.from_dict(frame.body["delta"]) == delta


def test_a_payload_encoded_once_is_framed_for_each_connection():
    from modules.mod_session_repl.wire import Payload

    payload = Payload.of(MessageType.DELTA, DELTA_BODY, local=False)
    frames = []
    for nonce in (NONCE_A, NONCE_B):
        writer = FrameWriter("node1", SECRET)
        reader = FrameReader(SECRET, nonce=nonce)
        reader.feed(writer.encode(MessageType.HELLO, hello(NONCE_A)))
        writer.peer_nonce = nonce
        (frame,) = reader.feed(writer.encode_payload(MessageType.DELTA, payload))
        frames.append(frame)
    assert frames[0].body == frames[1].body == DELTA_BODY
    with pytest.raises(FrameError, match="cannot make"):
        FrameWriter("", None).encode_payload(MessageType.DELTA, payload)  # a cluster payload


def test_one_ack_may_answer_a_batch_of_frames():
    check_body(MessageType.ACK, {"seq": 4, "result": "applied", "also": [5, 6]}, local=False)
    with pytest.raises(FrameError, match="sequence numbers"):
        check_body(MessageType.ACK, {"seq": 4, "also": [5, -1]}, local=False)


def test_a_delta_batch_carries_changes_in_order_and_rejects_a_malformed_one():
    sid = "0123456789ABCDEF0123456789ABCDEF.node1"
    body = {"changes": [[sid, 1, {"changes": [["set", "a", 1]]}], [sid, 2, {}]], "ack": True}
    check_body(MessageType.DELTA_BATCH, body, local=False)
    for bad in ([["not an id", 1, {}]], [[sid, -1, {}]], [[sid, 1]], [[sid, 1, []]]):
        with pytest.raises(FrameError, match="changes"):
            check_body(MessageType.DELTA_BATCH, {"changes": bad}, local=False)
    check_body(MessageType.ACK, {"seq": 3, "result": "missing", "results": ["applied", "missing"]}, local=False)
