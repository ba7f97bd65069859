"""Fixtures for tests that run real pyhttpd processes on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.server import PyHttpd


@pytest.fixture
def pyhttpd_factory() -> Iterator[Callable[..., PyHttpd]]:
    """`pyhttpd_factory(conf, **PyHttpd arguments)` starts a server; all stop after the test.

    The servers' logs are printed at teardown; pytest shows them when the test failed.
    """
    started: list[PyHttpd] = []

    def start(*args, **kwargs) -> PyHttpd:
        server = PyHttpd(*args, **kwargs)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.close()
            print(server.log_text())
