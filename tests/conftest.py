"""Fixtures that start real peers (Tomcat, Apache httpd + mod_jk, redis) for a test."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings

from tests.peers.apache import MOD_JK, Apache, apache2_binary
from tests.peers.binaries import require_binary
from tests.peers.peer import LOG_TAIL_CHARS, Peer
from tests.peers.redis import Redis, redis_server_binary
from tests.peers.tomcat import CATALINA_SH, Tomcat

PEER_FIXTURES = ("tomcat_factory", "apache_factory", "redis_server")
_started_peers = pytest.StashKey[list[Peer]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(name in PEER_FIXTURES for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.interop)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # A failing test shows the logs of the peers it started.
    report = yield
    if report.failed:
        for peer in item.stash.get(_started_peers, []):
            report.sections.append((f"{peer.name} logs", peer.log_text()[-LOG_TAIL_CHARS:]))
    return report


def _starter(request: pytest.FixtureRequest, peer_class: type[Peer]) -> Callable[..., Peer]:
    started = request.node.stash.setdefault(_started_peers, [])

    def start(*args, **kwargs) -> Peer:
        peer = peer_class(*args, **kwargs)
        request.addfinalizer(peer.close)
        started.append(peer)
        peer.start()
        return peer

    return start


@pytest.fixture
def tomcat_factory(request: pytest.FixtureRequest) -> Callable[..., Tomcat]:
    """``tomcat_factory(**Tomcat arguments)`` starts a Tomcat; all are stopped after the test."""
    require_binary(str(CATALINA_SH))
    require_binary("java")
    return _starter(request, Tomcat)


@pytest.fixture
def apache_factory(request: pytest.FixtureRequest) -> Callable[..., Apache]:
    """``apache_factory(**Apache arguments)`` starts an httpd; all are stopped after the test."""
    require_binary(apache2_binary())
    require_binary(str(MOD_JK))
    return _starter(request, Apache)


@pytest.fixture
def redis_server(request: pytest.FixtureRequest) -> Redis:
    """A started redis-server, stopped after the test."""
    require_binary(redis_server_binary())
    return _starter(request, Redis)()


# Property tests run the same examples on every machine and are never failed for being
# slow on a loaded CI host: a flaky red run tells nothing.
settings.register_profile("pyhttpd", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pyhttpd")
