"""Hook ordering (FIRST/MIDDLE/LAST, predecessors) and run types (first, all, void)."""

from __future__ import annotations

import pytest

from pyhttpd.hooks import Hooks
from pyhttpd.module import DECLINED, DONE, FIRST, LAST, MIDDLE, OK, REALLY_LAST


def test_hooks_run_by_order_then_registration():
    hooks, calls = Hooks(), []
    hooks.register("fixups", lambda r: calls.append("last") or OK, LAST)
    hooks.register("fixups", lambda r: calls.append("middle1") or OK, MIDDLE)
    hooks.register("fixups", lambda r: calls.append("first") or OK, FIRST)
    hooks.register("fixups", lambda r: calls.append("middle2") or OK, MIDDLE)
    assert hooks.run_all("fixups", None) == OK
    assert calls == ["first", "middle1", "middle2", "last"]


def test_predecessors_run_before_whatever_the_order_value():
    hooks, calls = Hooks(), []
    hooks.register("fixups", lambda r: calls.append("b") or OK, FIRST, module="b_module", predecessors=["a_module"])
    hooks.register("fixups", lambda r: calls.append("a") or OK, LAST, module="a_module")
    hooks.run_all("fixups", None)
    assert calls == ["a", "b"]


def test_run_first_stops_at_the_first_result_that_is_not_declined():
    hooks, calls = Hooks(), []
    hooks.register("handler", lambda r: calls.append(1) or DECLINED)
    hooks.register("handler", lambda r: calls.append(2) or OK)
    hooks.register("handler", lambda r: calls.append(3) or OK, REALLY_LAST)
    assert hooks.run_first("handler", None) == OK
    assert calls == [1, 2]


def test_run_all_stops_at_an_http_status_or_done():
    hooks = Hooks()
    hooks.register("access_checker", lambda r: OK)
    hooks.register("access_checker", lambda r: 403)
    hooks.register("access_checker", lambda r: pytest.fail("must not run"))
    assert hooks.run_all("access_checker", None) == 403
    hooks2 = Hooks()
    hooks2.register("fixups", lambda r: DONE)
    assert hooks2.run_all("fixups", None) == DONE


def test_all_declined_first_hook_returns_declined():
    hooks = Hooks()
    hooks.register("translate_name", lambda r: DECLINED)
    assert hooks.run_first("translate_name", None) == DECLINED


def test_unknown_hook_name_is_rejected():
    with pytest.raises(KeyError, match="unknown hook"):
        Hooks().register("no_such_hook", lambda: None)
