"""The per-node session store: versions, conflicts, expiry, state transfer, backup choice."""

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modules.mod_session_repl.session import Change, Delta, Session
from modules.mod_session_repl.session_id import new_session_id, rebind
from modules.mod_session_repl.store import (
    ApplyResult,
    SessionStore,
    StoredSession,
    backup_member_for,
)

SID = "0123456789ABCDEF0123456789ABCDEF.node1"
SID2 = "FEDCBA9876543210FEDCBA9876543210.node1"


def sets(**values):
    return Delta(changes=tuple(Change("set", k, v) for k, v in values.items()), accessed=True)


def removes(*names):
    return Delta(changes=tuple(Change("remove", n) for n in names), accessed=True)


def new_session_delta(created=100.0, max_inactive=1800, **values):
    return Delta(
        changes=tuple(Change("set", k, v) for k, v in values.items()),
        max_inactive=max_inactive,
        accessed=True,
        created=created,
    )


@pytest.fixture
def store():
    return SessionStore("node1", default_max_inactive=1800)


# --- local commits -----------------------------------------------------------------------


def test_a_session_from_a_request_is_committed_and_read_back(store):
    session = Session(SID, creation_time=100.0, max_inactive=600, is_new=True)
    session["user"] = "ann"
    assert store.commit(SID, session.delta(), now=100.0) == 1
    stored = store.get(SID)
    assert stored.attributes == {"user": "ann"}
    assert stored.version == 1 and stored.writer == "node1"
    assert stored.max_inactive == 600
    assert stored.creation_time == 100.0
    assert store.is_primary(SID)


def test_each_commit_bumps_the_version(store):
    store.commit(SID, new_session_delta(a=1), 100.0)
    assert store.commit(SID, sets(a=2), 101.0) == 2
    assert store.commit(SID, removes("a"), 102.0) == 3
    assert store.get(SID).attributes == {}
    assert store.get(SID).last_accessed == 102.0


def test_commit_to_an_unknown_session_is_a_key_error(store):
    with pytest.raises(KeyError):
        store.commit(SID, sets(a=1), 100.0)


def test_create_makes_an_empty_version_zero_session(store):
    stored = store.create(SID, 50.0, max_inactive=60)
    assert (stored.version, stored.attributes, stored.max_inactive) == (0, {}, 60)
    assert stored.primary == "node1"
    with pytest.raises(ValueError, match="already exists"):
        store.create(SID, 51.0)


def test_access_keeps_a_session_alive_and_moves_the_primary(store):
    store.commit(SID, new_session_delta(max_inactive=100), 0.0)
    assert store.access(SID, 90.0, origin="node2")
    assert store.get(SID).last_accessed == 90.0
    assert not store.is_primary(SID)
    assert not store.access(SID2, 90.0)


# --- replicated deltas -------------------------------------------------------------------


def test_replicated_delta_creates_a_backup_copy():
    backup = SessionStore("node2")
    result = backup.apply_delta(SID, new_session_delta(user="ann"), 1, 200.0, "node1")
    assert result is ApplyResult.APPLIED
    stored = backup.get(SID)
    assert stored.attributes == {"user": "ann"}
    assert stored.primary == "node1" and not backup.is_primary(SID)
    assert stored.last_accessed == 200.0  # the receiver's clock, not the sender's


def test_older_version_is_ignored():
    backup = SessionStore("node2")
    backup.apply_delta(SID, new_session_delta(x=1), 1, 0.0, "node1")
    backup.apply_delta(SID, sets(x=3), 3, 0.0, "node1")
    assert backup.apply_delta(SID, sets(x=2), 2, 0.0, "node1") is ApplyResult.IGNORED
    assert backup.get(SID).attributes == {"x": 3}
    assert backup.get(SID).version == 3


def test_late_set_does_not_resurrect_a_removed_attribute():
    backup = SessionStore("node2")
    backup.apply_delta(SID, new_session_delta(x=1), 1, 0.0, "node1")
    backup.apply_delta(SID, removes("x"), 3, 0.0, "node1")
    backup.apply_delta(SID, sets(x=2), 2, 0.0, "node1")
    assert backup.get(SID).attributes == {}


def test_duplicate_delta_is_ignored():
    backup = SessionStore("node2")
    delta = new_session_delta(x=1)
    backup.apply_delta(SID, delta, 1, 0.0, "node1")
    assert backup.apply_delta(SID, delta, 1, 5.0, "node1") is ApplyResult.IGNORED
    assert backup.get(SID).last_accessed == 0.0


def test_delta_after_a_missed_version_is_applied_and_asks_for_a_pull():
    backup = SessionStore("node2")
    backup.apply_delta(SID, new_session_delta(x=1), 1, 0.0, "node1")
    assert backup.apply_delta(SID, sets(y=2), 3, 0.0, "node1") is ApplyResult.GAP
    assert backup.get(SID).attributes == {"x": 1, "y": 2}


def test_delta_for_an_unknown_session_asks_for_a_pull():
    backup = SessionStore("node2")
    assert backup.apply_delta(SID, sets(x=1), 4, 0.0, "node1") is ApplyResult.MISSING
    assert SID not in backup


def test_replicated_max_inactive_change_is_applied():
    backup = SessionStore("node2")
    backup.apply_delta(SID, new_session_delta(max_inactive=1800), 1, 0.0, "node1")
    backup.apply_delta(SID, Delta(max_inactive=60), 2, 0.0, "node1")
    assert backup.get(SID).max_inactive == 60


def test_a_local_commit_wins_over_a_replicated_delta_of_the_same_base():
    store = SessionStore("node1")
    store.apply_delta(SID, new_session_delta(x=0), 1, 0.0, "node2")
    store.apply_delta(SID, sets(x=2), 2, 0.0, "node2")
    assert store.commit(SID, sets(x=1), 0.0) == 3
    assert store.get(SID).attributes == {"x": 1}


def test_concurrent_commits_on_two_nodes_converge_per_attribute():
    a, b = SessionStore("node1"), SessionStore("node2")
    for s in (a, b):
        s.apply_delta(SID, new_session_delta(shared=0, cart=[], theme="light"), 1, 0.0, "node1")
    # Both nodes serve a request for the session at once (non-sticky balancing).
    delta_a = sets(shared="from a", cart=["book"])
    delta_b = Delta(
        changes=(Change("set", "shared", "from b"), Change("remove", "theme")), accessed=True
    )
    version_a = a.commit(SID, delta_a, 1.0)
    version_b = b.commit(SID, delta_b, 1.0)
    a.apply_delta(SID, delta_b, version_b, 2.0, "node2")
    b.apply_delta(SID, delta_a, version_a, 2.0, "node1")
    assert a.get(SID).attributes == b.get(SID).attributes
    # The same version: the higher writer id wins the attribute both set...
    assert a.get(SID).attributes["shared"] == "from b"
    # ...and what only one side touched is kept from both.
    assert a.get(SID).attributes["cart"] == ["book"]
    assert "theme" not in a.get(SID).attributes
    assert (a.get(SID).version, a.get(SID).writer) == (b.get(SID).version, b.get(SID).writer)


@given(st.permutations(range(6)))
def test_deltas_in_any_order_end_in_the_same_state(order):
    deltas = [
        new_session_delta(a=0),
        sets(a=1, b=1),
        removes("a"),
        sets(c=3),
        sets(a=4),
        removes("b"),
    ]
    in_order = SessionStore("node2")
    for version, delta in enumerate(deltas, 1):
        in_order.apply_delta(SID, delta, version, 0.0, "node1")
    shuffled = SessionStore("node2")
    pending = list(order)
    # A delta before creation is answered MISSING; the sender would resend it with the session.
    while pending:
        index = pending.pop(0)
        result = shuffled.apply_delta(SID, deltas[index], index + 1, 0.0, "node1")
        if result is ApplyResult.MISSING:
            pending.append(index)
    assert shuffled.get(SID).attributes == in_order.get(SID).attributes == {"a": 4, "c": 3}


# --- invalidation and expiry -------------------------------------------------------------


def test_invalidated_session_cannot_be_resurrected_by_a_late_delta(store):
    store.commit(SID, new_session_delta(x=1), 0.0)
    assert store.invalidate(SID, 10.0)
    assert SID not in store and store.is_gone(SID)
    assert store.apply_delta(SID, sets(x=2), 5, 11.0, "node2") is ApplyResult.IGNORED
    assert store.apply_delta(SID, new_session_delta(x=2), 1, 11.0, "node2") is ApplyResult.IGNORED
    with pytest.raises(KeyError):
        store.commit(SID, new_session_delta(x=3), 12.0)
    assert SID not in store


def test_invalidate_in_a_commit_removes_the_session(store):
    store.commit(SID, new_session_delta(x=1), 0.0)
    store.commit(SID, Delta(invalidate=True, accessed=True), 1.0)
    assert SID not in store


def test_replicated_invalidate_removes_the_copy():
    backup = SessionStore("node2")
    backup.apply_delta(SID, new_session_delta(x=1), 1, 0.0, "node1")
    assert backup.apply_delta(SID, Delta(invalidate=True), 2, 0.0, "node1") is ApplyResult.APPLIED
    assert SID not in backup


def test_primary_expires_after_max_inactive(store):
    store.commit(SID, new_session_delta(max_inactive=60), 0.0)
    assert store.expire(59.0) == []
    assert store.expire(60.0) == [SID]
    assert SID not in store and store.is_gone(SID)


def test_backup_expires_only_after_twice_max_inactive():
    backup = SessionStore("node2")
    backup.apply_delta(SID, new_session_delta(max_inactive=60), 1, 0.0, "node1")
    assert backup.expire(100.0) == []
    assert backup.expire(120.0) == [SID]


def test_access_postpones_expiry(store):
    store.commit(SID, new_session_delta(max_inactive=60), 0.0)
    store.access(SID, 50.0)
    assert store.expire(100.0) == []
    assert store.expire(110.0) == [SID]


def test_session_with_max_inactive_zero_never_expires(store):
    store.commit(SID, new_session_delta(max_inactive=0), 0.0)
    assert store.expire(1e9) == []


def test_tombstones_are_forgotten_after_their_time():
    store = SessionStore("node1", default_max_inactive=60, tombstone_min=600.0)
    store.commit(SID, new_session_delta(max_inactive=60), 0.0)
    store.invalidate(SID, 0.0)
    store.expire(599.0)
    assert store.is_gone(SID)
    store.expire(600.0)
    assert not store.is_gone(SID)


# --- id change ---------------------------------------------------------------------------


def test_changed_id_keeps_the_session_and_the_old_id_still_finds_it(store):
    store.commit(SID, new_session_delta(x=1), 0.0)
    new_id = rebind(SID, "node2")
    assert store.change_id(SID, new_id, 10.0, origin="node2", alias_for=60.0)
    assert store.get(new_id).attributes == {"x": 1}
    assert store.get(new_id).id == new_id
    assert store.get(SID) is store.get(new_id)
    assert store.ids() == [new_id]
    store.commit(SID, sets(y=2), 20.0)  # an in-flight request with the old id
    assert store.get(new_id).attributes == {"x": 1, "y": 2}
    store.expire(71.0)
    assert store.get(SID) is None and new_id in store


def test_second_change_to_the_same_id_only_adds_the_alias(store):
    store.commit(SID, new_session_delta(x=1), 0.0)
    new_id = rebind(SID, "node2")
    store.change_id(SID, new_id, 1.0)
    assert store.change_id(SID, new_id, 2.0)
    assert not store.change_id(SID2, rebind(SID2, "node2"), 2.0)


# --- state transfer ----------------------------------------------------------------------


def test_snapshot_round_trips_through_json():
    donor = SessionStore("node1")
    donor.commit(SID, new_session_delta(cart=["a", {"qty": 2}], user="ann"), 0.0)
    donor.commit(SID, removes("user"), 10.0)
    donor.commit(SID2, new_session_delta(max_inactive=60), 5.0)
    records = json.loads(json.dumps(donor.snapshot(now=30.0)))
    joiner = SessionStore("node2")
    assert joiner.load_snapshot(records, now=1000.0) == 2
    copy = joiner.get(SID)
    original = donor.get(SID)
    assert copy.attributes == original.attributes == {"cart": ["a", {"qty": 2}]}
    assert (copy.version, copy.writer, copy.primary) == (2, "node1", "node1")
    assert copy.stamps == original.stamps
    assert copy.last_accessed == 1000.0 - 20.0  # idle time carried, rebased on our clock
    assert joiner.get(SID2).max_inactive == 60
    assert not joiner.is_primary(SID)
    # The removal tombstone came along: a late replay of the old set changes nothing.
    joiner.apply_delta(SID, sets(user="ann"), 1, 1000.0, "node1")
    assert "user" not in joiner.get(SID).attributes


def test_snapshot_of_selected_ids(store):
    store.commit(SID, new_session_delta(), 0.0)
    store.commit(SID2, new_session_delta(), 0.0)
    assert [r["id"] for r in store.snapshot(0.0, ids=[SID2, "unknown"])] == [SID2]


def test_loading_a_snapshot_merges_with_newer_local_state():
    joiner = SessionStore("node2")
    joiner.apply_delta(SID, new_session_delta(x=1), 1, 0.0, "node1")
    joiner.apply_delta(SID, sets(x=3), 3, 0.0, "node1")  # arrived live during the transfer
    donor = SessionStore("node1")
    donor.apply_delta(SID, new_session_delta(x=1), 1, 0.0, "node1")
    donor.apply_delta(SID, sets(x=2, y=2), 2, 0.0, "node1")
    joiner.load_snapshot(donor.snapshot(0.0), 0.0)
    assert joiner.get(SID).attributes == {"x": 3, "y": 2}
    assert joiner.get(SID).version == 3


def test_snapshot_does_not_bring_back_an_invalidated_session():
    joiner = SessionStore("node2")
    joiner.invalidate(SID, 0.0)
    donor = SessionStore("node1")
    donor.commit(SID, new_session_delta(), 0.0)
    assert joiner.load_snapshot(donor.snapshot(0.0), 0.0) == 0
    assert SID not in joiner


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.pop("stamps"),
        lambda r: r.update(id="bad id"),
        lambda r: r.update(version=-1),
        lambda r: r.update(idle="long"),
        lambda r: r.update(max_inactive=1.5),
        lambda r: r["stamps"].update(x=[1]),
        lambda r: r["attributes"].update(unstamped=1),
        lambda r: r.update(extra=1),
        lambda r: r.update(primary=7),
    ],
)
def test_malformed_snapshot_record_loads_nothing(damage):
    donor = SessionStore("node1")
    donor.commit(SID, new_session_delta(x=1), 0.0)
    donor.commit(SID2, new_session_delta(x=1), 0.0)
    records = json.loads(json.dumps(donor.snapshot(0.0)))
    damage(records[1])
    joiner = SessionStore("node2")
    with pytest.raises(ValueError):
        joiner.load_snapshot(records, 0.0)
    assert len(joiner) == 0


def test_stored_session_from_dict_rejects_non_objects():
    with pytest.raises(ValueError):
        StoredSession.from_dict([], 0.0)


def test_stats_count_primaries_backups_and_bytes():
    store = SessionStore("node1")
    store.commit(SID, new_session_delta(x="a" * 1000), 0.0)
    store.apply_delta(SID2, new_session_delta(y=1), 1, 0.0, "node2")
    store.invalidate(rebind(SID, "gone"), 0.0)
    stats = store.stats()
    assert stats["sessions"] == 2
    assert stats["primary"] == 1 and stats["backup"] == 1
    assert 1000 < stats["bytes"] < 1100
    assert stats["tombstones"] == 1
    store.commit(SID, sets(x="b"), 1.0)
    assert store.stats()["bytes"] < 100


# --- backup member -----------------------------------------------------------------------


def test_backup_member_is_the_same_whatever_the_member_order():
    members = ["node1", "node2", "node3", "node4"]
    for _ in range(200):
        session_id = new_session_id("node1")
        choice = backup_member_for(session_id, members)
        assert choice in members
        assert backup_member_for(session_id, list(reversed(members))) == choice


def test_backup_member_is_never_the_primary():
    members = ["node1", "node2", "node3"]
    for _ in range(200):
        assert backup_member_for(new_session_id("node1"), members, primary="node1") != "node1"
    assert backup_member_for(SID, ["node1"], primary="node1") is None
    assert backup_member_for(SID, []) is None


def test_backup_members_are_balanced_over_many_ids():
    members = ["node1", "node2", "node3", "node4"]
    counts = Counter(backup_member_for(new_session_id("n"), members) for _ in range(8000))
    for member in members:
        assert 1700 < counts[member] < 2300, counts


def test_backup_member_does_not_move_when_the_route_changes():
    members = ["node1", "node2", "node3", "node4"]
    for _ in range(100):
        session_id = new_session_id("node1")
        assert backup_member_for(session_id, members) == backup_member_for(
            rebind(session_id, "node3"), members
        )


def test_member_leaving_moves_only_the_backups_it_held():
    members = ["node1", "node2", "node3", "node4"]
    ids = [new_session_id("n") for _ in range(1000)]
    before = {i: backup_member_for(i, members) for i in ids}
    after = {i: backup_member_for(i, members[:-1]) for i in ids}
    moved = {i for i in ids if before[i] != after[i]}
    assert moved == {i for i in ids if before[i] == "node4"}


@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.one_of(st.none(), st.text(max_size=40))),
        min_size=1,
        max_size=30,
    )
)
def test_size_at_most_never_undercounts_after_commits_and_applied_deltas(actions):
    here, there = SessionStore("node1"), SessionStore("node2")
    sid = new_session_id("node1")
    here.create(sid, 1000.0)
    for version, (name, value) in enumerate(actions, start=1):
        change = Change("remove", name) if value is None else Change("set", name, value)
        delta = Delta(changes=(change,), created=1000.0 if version == 1 else None)
        length = len(json.dumps(delta.to_dict(), separators=(",", ":"), ensure_ascii=False))
        here.commit(sid, delta, 1000.0 + version, length)
        there.apply_delta(sid, delta, version, 1000.0 + version, "node1", length)
        for store in (here, there):
            session = store.get(sid)
            assert session.size_at_most() >= session.size
    assert here.get(sid).measure() == here.get(sid).size


def test_a_change_of_unknown_length_measures_the_session_again(store):
    sid = new_session_id("node1")
    store.create(sid, 1000.0)
    store.commit(sid, Delta(changes=(Change("set", "a", "x" * 100),)), 1001.0, 200)
    assert store.get(sid).size_at_most() == len('{"a":""}') + 100
    store.commit(sid, Delta(changes=(Change("set", "a", "y"),)), 1002.0, 20)
    assert store.get(sid).size_at_most() == len('{"a":""}') + 100 + 20
    store.commit(sid, Delta(changes=(Change("set", "a", "z"),)), 1003.0)
    assert store.get(sid).size_at_most() == len('{"a":"z"}')
