"""httpd's corrections of the worker MPM directives."""

from __future__ import annotations

from pyhttpd.core import GlobalConfig
from pyhttpd.mpm_limits import derive_limits


def limits_of(**settings):
    return derive_limits(GlobalConfig(**settings))


def test_defaults_are_httpds_worker_defaults():
    limits, warnings = limits_of()
    assert warnings == []
    assert (limits.server_limit, limits.thread_limit, limits.threads_per_child) == (16, 64, 25)
    assert limits.max_request_workers == 400
    assert limits.daemons_limit == 16
    assert limits.start_servers == 3
    assert (limits.min_spare_threads, limits.max_spare_threads) == (75, 250)


def test_threads_per_child_is_capped_at_thread_limit_with_a_warning():
    limits, warnings = limits_of(threads_per_child=100, thread_limit=64)
    assert limits.threads_per_child == 64
    assert any("ThreadsPerChild of 100 exceeds ThreadLimit of 64" in w for w in warnings)


def test_max_request_workers_is_rounded_down_to_a_multiple_of_threads_per_child():
    limits, warnings = limits_of(threads_per_child=25, max_request_workers=160)
    assert limits.max_request_workers == 150
    assert limits.daemons_limit == 6
    assert any("not a multiple of ThreadsPerChild of 25, decreasing to 150" in w for w in warnings)


def test_max_request_workers_below_threads_per_child_is_raised():
    limits, warnings = limits_of(threads_per_child=25, max_request_workers=10)
    assert limits.max_request_workers == 25
    assert limits.daemons_limit == 1
    assert any("less than ThreadsPerChild" in w for w in warnings)


def test_max_request_workers_beyond_server_limit_is_cut_to_server_limit_children():
    limits, warnings = limits_of(server_limit=4, threads_per_child=25, max_request_workers=400)
    assert (limits.daemons_limit, limits.max_request_workers) == (4, 100)
    assert any("exceed ServerLimit of 4" in w for w in warnings)


def test_start_servers_never_exceeds_the_children_allowed():
    limits, _ = limits_of(start_servers=10, threads_per_child=25, max_request_workers=50)
    assert limits.start_servers == 2


def test_max_spare_threads_leaves_room_for_one_child_above_min_spare():
    limits, warnings = limits_of(min_spare_threads=10, max_spare_threads=12, threads_per_child=8)
    assert limits.max_spare_threads == 10 + 8 + 1
    assert warnings == []


def test_server_limit_beyond_the_compiled_maximum_is_lowered():
    limits, warnings = limits_of(server_limit=50000, max_request_workers=25)
    assert limits.server_limit == 20000
    assert any("ServerLimit of 50000" in w for w in warnings)


def test_restart_keeps_the_running_server_and_thread_limits():
    running, _ = limits_of(server_limit=8, thread_limit=32, threads_per_child=16)
    limits, warnings = derive_limits(
        GlobalConfig(server_limit=4, thread_limit=64, threads_per_child=16), running
    )
    assert (limits.server_limit, limits.thread_limit) == (8, 32)
    assert any("changing ServerLimit to 4 from original value of 8" in w for w in warnings)
    assert any("changing ThreadLimit to 64 from original value of 32" in w for w in warnings)
