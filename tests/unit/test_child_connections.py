"""A child's connection handler: what is left of a connection once it is served."""

from __future__ import annotations

import gc
import weakref
from types import SimpleNamespace

import pytest

from pyhttpd.child import _Child


class _Worker:
    def __init__(self) -> None:
        self.status = ""

    def set_status(self, status: str) -> None:
        self.status = status


def _child(worker: _Worker) -> _Child:
    child = object.__new__(_Child)
    child.config = None
    child.slot = 0
    child.board = SimpleNamespace(worker=lambda slot, thread: worker)
    child.process = SimpleNamespace(count_connection=lambda: 1)
    child.columns = [0]
    child.limits = SimpleNamespace(max_connections_per_child=0)
    child.log = lambda level, message: None
    return child


class _CyclicConnection:
    """Like a real handler: its parser and callbacks refer back to it."""

    made: list[weakref.ref] = []
    fail = False

    def __init__(self, config, sock, addr, listen, worker) -> None:
        self.callback = self.serve
        self.buffer = bytearray(65536)
        _CyclicConnection.made.append(weakref.ref(self))

    def serve(self) -> None:
        if self.fail:
            raise OSError("connection reset")


@pytest.fixture
def no_cyclic_collector():
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.mark.parametrize("fail", [False, True], ids=["served", "failed"])
def test_a_finished_connection_is_freed_without_the_cyclic_collector(no_cyclic_collector, fail):
    _CyclicConnection.made.clear()
    _CyclicConnection.fail = fail
    worker = _Worker()
    child = _child(worker)
    handle = child._connection_handler(_CyclicConnection, SimpleNamespace(listen=None))
    handle(None, ("127.0.0.1", 40000))
    assert len(_CyclicConnection.made) == 1
    assert _CyclicConnection.made[0]() is None
    assert child.columns == [0]
    assert worker.status == "_"
