"""The lb core: load arithmetic per method, sticky routing, failover, recovery, shared state."""

import mmap
import multiprocessing
import os
import textwrap
from collections import Counter

import pytest

from modules.mod_jk.lb import (
    Activation,
    ErrorKind,
    Method,
    State,
    choose_member,
    find_route,
    find_routes,
    force_recovery,
    lb_mults,
    maintain,
    record_busy,
    record_error,
    record_start,
    record_success,
    release_busy,
    session_ids,
    update_mult,
)
from modules.mod_jk.lb_shm import BalancerState, LbRecord, MemberRecord
from modules.mod_jk.workers import parse_workers_properties


class StrictLock:
    """A lock that fails the test when taken twice (the scoreboard's lock is not re-entrant)."""

    def __init__(self):
        self.held = False
        self.taken = 0

    def __enter__(self):
        assert not self.held, "the balancer lock was taken while already held"
        self.held = True
        self.taken += 1

    def __exit__(self, *exc):
        self.held = False


def config_of(text):
    lines = textwrap.dedent(text).splitlines()
    return parse_workers_properties([("workers.properties", n, line)
                                     for n, line in enumerate(lines, start=1)])


def make_lb(text, buffer=None, lock=None):
    config = config_of(text)
    buffer = bytearray(BalancerState.size_for(config)) if buffer is None else buffer
    return BalancerState(buffer, config, lock or StrictLock())["lb"]


TWO_NODES = """\
    worker.list=lb
    worker.node1.port=8009
    worker.node2.port=8010
    worker.lb.type=lb
    worker.lb.balance_workers=node1,node2
"""


def serve(lb, route=None, now=0.0, **kwargs):
    """One successful request through the balancer; returns the member's name."""
    member = choose_member(lb, route, now, **kwargs)
    assert member is not None
    record_start(lb, member, session=route is not None)
    record_success(lb, member, read=100, transferred=1000)
    return member.name


def fail(lb, name, now, kind=ErrorKind.BACKEND):
    member = lb.member(name)
    record_start(lb, member, session=False)
    return record_error(lb, member, now, kind)


# -- load values -------------------------------------------------------------------------

def test_lb_mult_is_the_lcm_of_factors_over_each_factor():
    assert lb_mults([3, 1]) == [1, 3]
    assert lb_mults([2, 3, 4]) == [6, 4, 3]
    assert lb_mults([1, 1]) == [1, 1]


def test_method_request_with_lbfactor_3_to_1_gives_exactly_3_to_1_over_400_requests():
    lb = make_lb(TWO_NODES + "worker.node1.lbfactor=3\nworker.node2.lbfactor=1\n")
    assert [m.lb_mult for m in lb.members] == [1, 3]
    counts = Counter(serve(lb) for _ in range(400))
    assert counts == {"node1": 300, "node2": 100}


def test_equal_members_alternate():
    lb = make_lb(TWO_NODES)
    assert [serve(lb) for _ in range(6)] == ["node1", "node2"] * 3


def test_method_traffic_sends_new_requests_to_the_member_that_moved_fewer_bytes():
    lb = make_lb(TWO_NODES + "worker.lb.method=T\n")
    node1 = choose_member(lb, None, 0)
    record_start(lb, node1, session=False)
    record_success(lb, node1, read=10, transferred=5000)
    assert node1.lb_value == 5010
    assert [serve(lb) for _ in range(3)] == ["node2", "node2", "node2"]  # 1100 each


def test_method_busyness_counts_requests_in_flight():
    lb = make_lb(TWO_NODES + "worker.lb.method=B\n")
    slow = choose_member(lb, None, 0)
    record_start(lb, slow, session=False)
    assert slow.lb_value == 1
    assert [serve(lb) for _ in range(3)] == ["node2"] * 3
    record_success(lb, slow)
    assert slow.lb_value == 0
    assert slow.busy == 0 and lb.record.busy == 0


def test_method_sessions_counts_only_requests_that_start_a_session():
    lb = make_lb(TWO_NODES + "worker.lb.method=S\n")
    node1 = lb.member("node1")
    for _ in range(5):
        record_start(lb, node1, session=True)
        record_success(lb, node1)
    assert node1.lb_value == 0 and node1.sessions == 0
    record_start(lb, node1, session=False)
    record_success(lb, node1)
    assert node1.lb_value == 1 and node1.sessions == 1
    assert serve(lb) == "node2"


def test_stateless_requests_go_round_robin_whatever_the_load():
    lb = make_lb(TWO_NODES)
    lb.member("node1").lb_value = 1000
    picks = []
    for _ in range(4):
        member = choose_member(lb, None, 0, stateless=True)
        record_start(lb, member, session=False, stateless=True)
        record_success(lb, member)
        picks.append(member.name)
    assert picks == ["node1", "node2", "node1", "node2"]


def test_lower_distance_is_preferred_until_it_is_unusable():
    lb = make_lb(TWO_NODES + "worker.node1.distance=1\n")
    assert {serve(lb) for _ in range(4)} == {"node2"}
    fail(lb, "node2", now=10)
    assert serve(lb, now=10) == "node1"


def test_update_mult_follows_a_changed_lbfactor():
    lb = make_lb(TWO_NODES)
    lb.member("node1").lb_factor = 2
    update_mult(lb)
    assert [m.lb_mult for m in lb.members] == [1, 2]


# -- maintenance and decay ----------------------------------------------------------------

def test_maintenance_halves_load_values_once_per_elapsed_interval():
    lb = make_lb(TWO_NODES)
    node1, node2 = lb.members
    node1.lb_value, node2.lb_value = 64, 10
    assert not maintain(lb, now=40)  # not due: 60 s interval, 2 s early at most
    assert maintain(lb, now=58)
    assert (node1.lb_value, node2.lb_value) == (32, 5)
    assert maintain(lb, now=58 + 120)  # two intervals: divided by 4
    assert (node1.lb_value, node2.lb_value) == (8, 1)


def test_busyness_is_not_decayed_and_next_subtracts_the_minimum():
    busy = make_lb(TWO_NODES + "worker.lb.method=B\n")
    busy.members[0].lb_value = 6
    maintain(busy, now=100)
    assert busy.members[0].lb_value == 6

    nxt = make_lb(TWO_NODES + "worker.lb.method=N\n")
    nxt.members[0].lb_value, nxt.members[1].lb_value = 7, 3
    maintain(nxt, now=100)
    assert (nxt.members[0].lb_value, nxt.members[1].lb_value) == (4, 0)


def test_maintenance_disabled_by_worker_maintain_zero():
    lb = make_lb(TWO_NODES + "worker.maintain=0\n")
    lb.members[0].lb_value = 8
    assert not maintain(lb, now=10_000)
    assert lb.members[0].lb_value == 8


def test_member_without_requests_since_last_maintenance_becomes_idle():
    lb = make_lb(TWO_NODES)
    serve(lb)
    serve(lb)
    assert [m.state for m in lb.members] == [State.OK, State.OK]
    maintain(lb, now=100)  # both were elected since the start
    serve(lb, now=100)
    maintain(lb, now=200)
    assert [m.state.text for m in lb.members] == ["OK", "OK/IDLE"]


# -- sticky sessions ----------------------------------------------------------------------

@pytest.mark.parametrize(("cookies", "uri", "route"), [
    ("JSESSIONID=ABC123.node2", "/app/", "node2"),
    ("other=1; JSESSIONID=ABC123.node2; more=2", "/app/", "node2"),
    ('JSESSIONID="ABC.node1"', "/app/", "node1"),
    ("XJSESSIONID=ABC.node9", "/app/", None),
    ("JSESSIONID=ABC123", "/app/", None),
    (None, "/app/page;jsessionid=XYZ.node1?x=1", "node1"),
    ("JSESSIONID=ABC.node2", "/app/page;jsessionid=XYZ.node1", "node1"),  # path wins
    ("JSESSIONID=ABC.dc1.node1", "/", "dc1.node1"),  # everything after the first '.'
    (["a=b", "JSESSIONID=ABC.node2"], "/", "node2"),  # several Cookie headers
    ("a=1,JSESSIONID = ABC.node2 ,b=2", "/", "node2"),
    ("JSESSIONID=;JSESSIONID=B.node2", "/", "node2"),  # an empty value does not count
    ("x=JSESSIONID=A.node1", "/", None),  # inside another cookie's value
    ("JSESSIONIDJSESSIONID=A.node1", "/", None),
])
def test_find_route_reads_the_session_cookie_or_path_parameter(cookies, uri, route):
    assert find_route(cookies, uri) == route


def test_find_route_with_a_custom_cookie_and_path_parameter():
    assert find_route("SESSION=S.nodeA", "/", session_cookie="SESSION") == "nodeA"
    assert find_route(None, "/x;sid=S.nodeB", session_path=";sid") == "nodeB"


def test_every_session_cookie_counts_in_order():
    cookies = "JSESSIONID=A.node1; JSESSIONID=B.node2"
    assert session_ids(cookies, "/") == ["A.node1", "B.node2"]
    assert find_routes(cookies, "/") == ["node1", "node2"]


def test_sticky_request_follows_its_route_even_to_a_busier_member():
    lb = make_lb(TWO_NODES)
    lb.member("node2").lb_value = 1000
    assert serve(lb, route="node2") == "node2"


def test_later_session_routes_are_tried_when_the_first_member_is_gone():
    lb = make_lb(TWO_NODES + "worker.lb.sticky_session_force=true\n")
    fail(lb, "node1", now=1)
    assert choose_member(lb, ["node1", "node2"], 1).name == "node2"


def test_route_is_ignored_when_the_lb_is_not_sticky():
    lb = make_lb(TWO_NODES + "worker.lb.sticky_session=false\n")
    lb.member("node2").lb_value = 1000
    assert serve(lb, route="node2") == "node1"


def test_redirect_to_the_backup_when_the_routes_member_is_in_error():
    lb = make_lb(TWO_NODES + """\
        worker.node1.redirect=node2
        worker.node2.activation=D
    """)
    assert fail(lb, "node1", now=5) is State.ERROR
    assert serve(lb, route="node1", now=5) == "node2"


def test_member_failed_in_this_request_is_skipped_for_its_redirect():
    lb = make_lb(TWO_NODES + "worker.node1.redirect=node2\n")
    member = choose_member(lb, "node1", 0, exclude={"node1"})
    assert member.name == "node2"


def test_without_redirect_a_dead_routes_request_is_balanced_as_new():
    lb = make_lb(TWO_NODES)
    fail(lb, "node2", now=1)
    assert serve(lb, route="node2", now=1) == "node1"


def test_sticky_session_force_with_a_dead_member_returns_none():
    lb = make_lb(TWO_NODES + "worker.lb.sticky_session_force=true\nworker.node1.redirect=node2\n")
    fail(lb, "node1", now=1)
    assert choose_member(lb, "node1", 1) is None
    assert choose_member(lb, "unknown", 1) is None
    assert choose_member(lb, None, 1).name == "node2"


def test_domain_members_stand_in_for_each_other():
    lb = make_lb("""\
        worker.list=lb
        worker.a1.route=dc1.a1
        worker.a2.route=dc1.a2
        worker.b1.route=dc2.b1
        worker.lb.type=lb
        worker.lb.balance_workers=a1,a2,b1
    """)
    assert lb.member("a1").domain == "dc1"
    fail(lb, "a1", now=1)
    assert {serve(lb, route="dc1.a1", now=1) for _ in range(3)} == {"a2"}
    assert serve(lb, route="dc2.gone", now=1) == "b1"  # unknown route, known domain


# -- activation ---------------------------------------------------------------------------

def test_disabled_member_gets_only_its_own_sessions():
    lb = make_lb(TWO_NODES + "worker.node2.activation=D\n")
    assert {serve(lb) for _ in range(5)} == {"node1"}
    assert serve(lb, route="node2") == "node2"


def test_stopped_member_gets_nothing():
    lb = make_lb(TWO_NODES + "worker.node2.activation=S\n")
    assert {serve(lb) for _ in range(5)} == {"node1"}
    assert serve(lb, route="node2") == "node1"


def test_mapping_activation_overrides_apply_to_its_requests_only():
    lb = make_lb(TWO_NODES)
    stopped = {"node1": Activation.STOPPED}
    assert {serve(lb, activations=stopped) for _ in range(3)} == {"node2"}
    assert serve(lb, route="node1", activations=stopped) == "node2"
    assert serve(lb, route="node1") == "node1"


def test_single_member_is_used_while_it_can_serve_sticky_requests():
    lb = make_lb("""\
        worker.list=lb
        worker.lb.type=lb
        worker.lb.balance_workers=only
    """)
    assert serve(lb) == "only"
    fail(lb, "only", now=1)
    assert choose_member(lb, None, 1) is None


# -- errors and recovery ------------------------------------------------------------------

def test_member_in_error_recovers_after_recover_time_through_one_probe():
    lb = make_lb(TWO_NODES + "worker.lb.recover_time=60\n")
    for _ in range(4):
        serve(lb)
    assert fail(lb, "node1", now=1000) is State.ERROR
    assert {serve(lb, now=1000) for _ in range(3)} == {"node2"}

    maintain(lb, now=1060)  # exactly recover_time: not yet
    assert lb.member("node1").state is State.ERROR
    maintain(lb, now=1130)
    node1 = lb.member("node1")
    assert node1.state.text == "ERR/REC"
    assert node1.lb_value == max(m.lb_value for m in lb.members)  # not flooded on return

    probe = choose_member(lb, "node1", 1130)
    assert probe.name == "node1"
    assert node1.state.text == "ERR/PRB"
    assert choose_member(lb, "node1", 1130).name == "node2"  # one probe at a time
    record_start(lb, node1, session=True)
    record_success(lb, node1)
    assert node1.state is State.OK
    assert (node1.first_error_time, node1.last_error_time) == (0, 0)


def test_a_recovering_member_is_probed_by_the_first_election_it_wins_on_load():
    lb = make_lb(TWO_NODES)
    fail(lb, "node1", now=0)
    maintain(lb, now=100)
    probe = choose_member(lb, None, 100)  # equal loads: the scan starts at node1
    assert (probe.name, probe.state) == ("node1", State.PROBE)
    assert choose_member(lb, None, 100).name == "node2"


def test_failed_probe_puts_the_member_back_in_error():
    lb = make_lb(TWO_NODES)
    fail(lb, "node1", now=0)
    maintain(lb, now=100)
    probe = choose_member(lb, "node1", 100)
    record_start(lb, probe, session=True)
    assert record_error(lb, probe, 100, ErrorKind.BACKEND) is State.ERROR
    assert probe.last_error_time == 100


def test_error_with_other_requests_in_flight_stays_local_until_escalation_time():
    lb = make_lb(TWO_NODES + "worker.lb.recover_time=60\n")  # escalation after 30 s
    node1 = lb.member("node1")
    record_start(lb, node1, session=False)  # a request still running
    assert fail(lb, "node1", now=1000) is State.OK
    assert node1.first_error_time == 1000 and node1.errors == 1
    maintain(lb, now=1020)
    assert node1.state is not State.ERROR
    maintain(lb, now=1090)
    assert node1.state is State.ERROR


def test_zero_error_escalation_time_escalates_at_once():
    lb = make_lb(TWO_NODES + "worker.lb.error_escalation_time=0\n")
    record_start(lb, lb.member("node1"), session=False)
    assert fail(lb, "node1", now=1) is State.ERROR


def test_reply_timeouts_beyond_max_reply_timeouts_put_the_member_in_error():
    lb = make_lb(TWO_NODES + "worker.lb.max_reply_timeouts=2\n")
    kinds = [fail(lb, "node1", now=1, kind=ErrorKind.REPLY_TIMEOUT) for _ in range(3)]
    assert kinds == [State.OK, State.OK, State.ERROR]
    assert lb.member("node1").reply_timeouts == 3


def test_reply_timeout_counter_decays_at_maintenance():
    lb = make_lb(TWO_NODES + "worker.lb.max_reply_timeouts=5\n")
    for _ in range(4):
        fail(lb, "node1", now=1, kind=ErrorKind.REPLY_TIMEOUT)
    maintain(lb, now=100)
    assert lb.member("node1").reply_timeouts == 2


@pytest.mark.parametrize(("kind", "state"), [
    (ErrorKind.STATUS_FATAL, State.ERROR),
    (ErrorKind.STATUS, State.OK),
    (ErrorKind.CLIENT, State.OK),
    (ErrorKind.PROTOCOL, State.OK),
    (ErrorKind.SERVER, State.OK),
])
def test_which_errors_put_a_member_in_error_for_everybody(kind, state):
    lb = make_lb(TWO_NODES)
    assert fail(lb, "node1", now=1, kind=kind) is state


def test_client_errors_are_counted_apart():
    lb = make_lb(TWO_NODES)
    fail(lb, "node1", now=1, kind=ErrorKind.CLIENT)
    node1 = lb.member("node1")
    assert (node1.client_errors, node1.errors) == (1, 0)


def test_forced_recovery_when_every_member_failed():
    lb = make_lb(TWO_NODES)
    fail(lb, "node1", now=1)
    fail(lb, "node2", now=1)
    assert choose_member(lb, None, 1) is None
    assert force_recovery(lb) == ["node1", "node2"]
    assert lb.member("node1").state.text == "ERR/FRC"
    assert choose_member(lb, None, 1) is not None


def test_maintenance_forces_recovery_when_all_members_are_in_error():
    lb = make_lb(TWO_NODES + "worker.lb.recover_time=600\n")
    fail(lb, "node1", now=100)
    fail(lb, "node2", now=100)
    maintain(lb, now=200)
    assert [m.state for m in lb.members] == [State.FORCE, State.FORCE]


def test_busy_member_is_skipped_until_it_has_a_free_connection():
    lb = make_lb(TWO_NODES)
    node1 = lb.member("node1")
    record_busy(lb, node1)
    assert node1.state.text == "OK/BUSY"
    assert {serve(lb) for _ in range(3)} == {"node2"}
    release_busy(lb, node1)
    assert node1.state is State.OK


def test_counters_of_a_request():
    lb = make_lb(TWO_NODES)
    member = choose_member(lb, None, 0)
    record_start(lb, member, session=False)
    record_start(lb, member, session=True)
    assert (member.busy, member.max_busy, lb.record.busy) == (2, 2, 2)
    record_success(lb, member, read=10, transferred=20)
    record_error(lb, member, 1, ErrorKind.CLIENT, read=1, transferred=2)
    assert (member.busy, member.max_busy, lb.record.max_busy) == (0, 2, 2)
    assert (member.elected, member.sessions) == (2, 1)
    assert (member.read, member.transferred) == (11, 22)


# -- shared state -------------------------------------------------------------------------

def test_two_children_over_one_buffer_share_the_balancer():
    config = config_of(TWO_NODES)
    shared = bytearray(BalancerState.size_for(config))
    lock = StrictLock()
    child1 = BalancerState(shared, config, lock)["lb"]
    child2 = BalancerState(shared, config, lock)["lb"]

    assert serve(child1) == "node1"
    assert child2.member("node1").lb_value == 1
    assert serve(child2) == "node2"  # child2 sees child1's election

    fail(child1, "node2", now=5)
    assert child2.member("node2").state is State.ERROR
    assert {serve(child2, now=5) for _ in range(3)} == {"node1"}


def test_forked_child_updates_are_seen_through_a_shared_mmap():
    config = config_of(TWO_NODES)
    shared = mmap.mmap(-1, BalancerState.size_for(config))
    lock = multiprocessing.Lock()
    parent = BalancerState(memoryview(shared), config, lock)["lb"]
    pid = os.fork()
    if pid == 0:  # the child: fail node1 as a child's request would, never return to pytest
        code = 1
        try:
            child = BalancerState(memoryview(shared), config, lock)["lb"]
            fail(child, "node1", now=7)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert parent.member("node1").state is State.ERROR
    assert parent.member("node1").last_error_time == 7
    assert serve(parent, now=7) == "node2"


def test_global_maintenance_runs_once_per_interval_across_children():
    config = config_of(TWO_NODES)
    shared = bytearray(BalancerState.size_for(config))
    lock = StrictLock()
    child1 = BalancerState(shared, config, lock)["lb"]
    child2 = BalancerState(shared, config, lock)["lb"]
    child1.members[0].lb_value = 16
    assert maintain(child1, now=100)
    assert not maintain(child2, now=110)
    assert child2.members[0].lb_value == 8


def test_attaching_to_a_buffer_keeps_its_state():
    config = config_of(TWO_NODES)
    shared = bytearray(BalancerState.size_for(config))
    first = BalancerState(shared, config, StrictLock())["lb"]
    first.member("node1").errors = 7
    again = BalancerState(shared, config, StrictLock())["lb"]
    assert again.member("node1").errors == 7


def test_a_buffer_laid_out_for_other_workers_is_initialised_afresh():
    shared = bytearray(4096)
    old = make_lb(TWO_NODES, buffer=shared)
    old.member("node1").errors = 7
    new = make_lb(TWO_NODES.replace("node2", "node3"), buffer=shared)
    assert [m.name for m in new.members] == ["node1", "node3"]
    assert new.member("node1").errors == 0


def test_changed_lb_settings_are_written_afresh():
    shared = bytearray(4096)
    make_lb(TWO_NODES, buffer=shared).member("node1").errors = 7
    new = make_lb(TWO_NODES + "worker.node1.lbfactor=4\n", buffer=shared)
    assert (new.member("node1").lb_factor, new.member("node1").errors) == (4, 0)
    assert [m.lb_mult for m in new.members] == [1, 4]


def test_maintenance_clock_starts_when_the_state_is_created():
    config = config_of(TWO_NODES)
    lb = BalancerState(bytearray(BalancerState.size_for(config)), config, StrictLock(),
                       now=1000.0)["lb"]
    assert lb.record.last_maintain_time == 1000.0
    assert not maintain(lb, now=1030)
    assert maintain(lb, now=1060)


def test_records_configure_lb_and_members_from_the_workers_file():
    lb = make_lb(TWO_NODES + """\
        worker.lb.method=Busyness
        worker.lb.recover_time=30
        worker.lb.sticky_session_force=true
        worker.node1.route=jvm1
        worker.node1.distance=2
        worker.node2.redirect=jvm1
    """)
    record = lb.record
    assert (record.name, record.method, record.recover_time) == ("lb", Method.BUSYNESS, 30)
    assert (record.sticky_session, record.sticky_session_force) == (True, True)
    assert (record.session_cookie, record.session_path) == ("JSESSIONID", ";jsessionid")
    assert record.maintain_time == 60 and record.member_count == 2
    node1, node2 = lb.members
    assert (node1.route, node1.distance, node1.state, node1.activation) == (
        "jvm1", 2, State.IDLE, Activation.ACTIVE)
    assert node2.redirect == "jvm1"


def test_record_layout_is_fixed_size_and_strings_are_bounded():
    assert MemberRecord.SIZE % 8 == 0 and LbRecord.SIZE % 8 == 0
    record = MemberRecord(bytearray(MemberRecord.SIZE), 0)
    record.route = "r" * 63
    assert record.route == "r" * 63
    with pytest.raises(ValueError):
        record.route = "r" * 64


def test_buffer_too_small_is_refused():
    config = config_of(TWO_NODES)
    with pytest.raises(ValueError):
        BalancerState(bytearray(BalancerState.size_for(config) - 1), config, StrictLock())


def test_an_optimistic_request_takes_the_lock_only_to_count_its_start_and_its_end():
    lock = StrictLock()
    lb = make_lb(TWO_NODES, lock=lock)
    before = lock.taken
    member = choose_member(lb, None, 0)  # selection; no maintenance is due
    assert lock.taken == before
    record_start(lb, member, session=False)
    record_success(lb, member)
    assert lock.taken - before == 2


def test_a_pessimistic_lb_elects_under_the_lock():
    lock = StrictLock()
    lb = make_lb(TWO_NODES + "worker.lb.lock=P\n", lock=lock)
    before = lock.taken
    serve(lb)
    assert lock.taken - before == 3


def test_a_probe_another_child_took_meanwhile_is_not_probed_twice():
    class OtherChildProbesFirst(StrictLock):
        balancer = None

        def __enter__(self):
            super().__enter__()
            node1 = self.balancer and self.balancer.member("node1")
            if node1 and node1.state is State.RECOVER:  # the other child's election won the lock
                node1.state = State.PROBE

    lock = OtherChildProbesFirst()
    lb = lock.balancer = make_lb(TWO_NODES, lock=lock)
    fail(lb, "node1", now=0)
    maintain(lb, now=100)
    assert lb.member("node1").state is State.RECOVER
    assert choose_member(lb, "node1", 100).name == "node2"
    assert lb.member("node1").state is State.PROBE


def test_maintenance_takes_the_lock_only_when_a_run_is_due():
    lock = StrictLock()
    lb = make_lb(TWO_NODES, lock=lock)
    before = lock.taken
    assert not maintain(lb, now=40)
    assert lock.taken == before
    assert maintain(lb, now=58)
    assert lock.taken == before + 1


def test_settings_read_mod_jk_spellings_and_show_jkstatus_names():
    assert Activation.parse("disabled") is Activation.DISABLED
    assert Activation.parse("2") is Activation.STOPPED
    assert Method.parse("busyness") is Method.BUSYNESS
    assert (Method.NEXT.text, Activation.ACTIVE.text, State.IDLE.text) == ("Next", "ACT", "OK/IDLE")
    with pytest.raises(ValueError):
        Method.parse("quick")
