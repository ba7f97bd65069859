"""Virtual hosts over real connections: by Host header, ServerAlias, the default vhost of an
address, by port."""

from __future__ import annotations

import pytest

from tests.integration.raw_http import Client, fetch

CONF = """
LoadModule dir_module modules/mod_dir
LoadModule mime_module modules/mod_mime
<VirtualHost *:{port}>
    ServerName a.example
    DocumentRoot sites/a
</VirtualHost>
<VirtualHost *:{port}>
    ServerName b.example
    ServerAlias www.b.example *.b.test
    DocumentRoot sites/b
    <Location /private>
        SetHandler none-such
    </Location>
</VirtualHost>
<VirtualHost *>
    ServerName any-port.example
    DocumentRoot sites/second
</VirtualHost>
"""
FILES = {f"sites/{name}/index.html": name for name in ("a", "b", "second")}


@pytest.fixture
def server(pyhttpd_factory):
    return pyhttpd_factory(CONF, extra_listens=("http",), files=FILES, start_servers=1)


def body(port: int, host: str) -> bytes:
    response = fetch(port, "/", host=host)
    assert response.status == 200
    return response.body


def test_name_based_virtual_hosts(server):
    assert body(server.port, "a.example") == b"a"
    assert body(server.port, "b.example") == b"b"
    assert body(server.port, "B.EXAMPLE:" + str(server.port)) == b"b"
    assert body(server.port, "www.b.example") == b"b"
    assert body(server.port, "cdn.b.test") == b"b"


def test_an_unknown_host_gets_the_first_virtual_host_of_the_address(server):
    assert body(server.port, "nobody.example") == b"a"
    assert body(server.port, "127.0.0.1") == b"a"


def test_virtual_hosts_by_port(server):
    # Only the <VirtualHost *> (any port) listens on the second port; it wins whatever the Host.
    second = server.ports[1]
    assert body(second, "a.example") == b"second"
    assert body(second, "b.example") == b"second"
    assert body(server.port, "any-port.example") == b"second"


def test_one_connection_may_carry_requests_for_several_hosts(server):
    with Client(server.port) as client:
        assert client.request("/", host="a.example").body == b"a"
        assert client.request("/", host="b.example").body == b"b"


def test_sections_of_a_virtual_host_apply_only_there(server):
    assert fetch(server.port, "/private/x", host="b.example").status == 500
    assert fetch(server.port, "/private/x", host="a.example").status == 404
