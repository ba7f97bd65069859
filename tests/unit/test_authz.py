"""mod_authz_core and mod_authz_host: Require, its containers, merging across sections."""

from __future__ import annotations

import pytest

from pyhttpd.config import Config
from pyhttpd.conftree import ConfigError
from tests.unit.static_request import serve, static_config

FILES = {"htdocs/index.html": "home", "htdocs/sub/a.html": "sub", "htdocs/pub/p.html": "pub"}


def status(config, target="/index.html", remote_ip="127.0.0.1", method="GET", local_ip="127.0.0.1") -> int:
    return serve(config, target, method, remote_ip=remote_ip, local_ip=local_ip)[1].status


def dir_conf(tmp_path, body: str, where: str = "htdocs") -> str:
    return f"<Directory {tmp_path}/{where}>\n{body}\n</Directory>"


def test_without_require_access_is_granted(tmp_path):
    config = static_config(tmp_path, files=FILES)
    assert status(config, remote_ip="203.0.113.9") == 200


def test_require_all_denied_is_403_and_logged(tmp_path, capfd):
    config = static_config(tmp_path, dir_conf(tmp_path, "Require all denied"), FILES)
    assert status(config) == 403
    err = capfd.readouterr().err
    assert "[authz_core:error]" in err
    assert f"client denied by server configuration: {tmp_path}/htdocs/index.html" in err


def test_require_ip_allows_the_listed_client_and_denies_others(tmp_path):
    config = static_config(tmp_path, dir_conf(tmp_path, "Require ip 127.0.0.1"), FILES)
    assert status(config, remote_ip="127.0.0.1") == 200
    assert status(config, remote_ip="127.0.0.2") == 403
    assert status(config, remote_ip="10.0.0.1") == 403
    assert status(config, remote_ip="::1") == 403


@pytest.mark.parametrize(
    ("spec", "allowed", "denied"),
    [
        ("10.0.0.0/8", "10.200.3.4", "11.0.0.1"),
        ("10.0.0.0/255.0.0.0", "10.1.1.1", "192.168.0.1"),
        ("192.168", "192.168.7.7", "192.169.0.1"),
        ("172.16.", "172.16.0.9", "172.17.0.9"),
        ("::1", "::1", "::2"),
        ("fe80::/10", "fe80::1", "fec0::1"),
        ("127.0.0.1", "::ffff:127.0.0.1", "::ffff:127.0.0.2"),
        ("10.1.1.1 192.0.2.0/24", "192.0.2.77", "10.1.1.2"),
    ],
)
def test_require_ip_forms(tmp_path, spec, allowed, denied):
    config = static_config(tmp_path, dir_conf(tmp_path, f"Require ip {spec}"), FILES)
    assert status(config, remote_ip=allowed) == 200
    assert status(config, remote_ip=denied) == 403


def test_require_local_grants_loopback_and_the_servers_own_address(tmp_path):
    config = static_config(tmp_path, dir_conf(tmp_path, "Require local"), FILES)
    assert status(config, remote_ip="127.0.0.1") == 200
    assert status(config, remote_ip="::1") == 200
    assert status(config, remote_ip="192.0.2.5", local_ip="192.0.2.5") == 200
    assert status(config, remote_ip="192.0.2.6", local_ip="192.0.2.5") == 403


def test_require_not_ip_inside_require_all_refuses_that_network(tmp_path):
    body = "<RequireAll>\nRequire all granted\nRequire not ip 10.0.0.0/8\n</RequireAll>"
    config = static_config(tmp_path, dir_conf(tmp_path, body), FILES)
    assert status(config, remote_ip="10.1.2.3") == 403
    assert status(config, remote_ip="192.0.2.1") == 200


def test_nested_containers(tmp_path):
    body = (
        "<RequireAny>\n"
        "  Require ip 192.0.2.0/24\n"
        "  <RequireAll>\n    Require ip 10.0.0.0/8\n    Require not ip 10.9.0.0/16\n    Require method GET\n  </RequireAll>\n"
        "</RequireAny>"
    )
    config = static_config(tmp_path, dir_conf(tmp_path, body), FILES)
    assert status(config, remote_ip="192.0.2.4", method="OPTIONS") == 200
    assert status(config, remote_ip="10.1.0.1") == 200
    assert status(config, remote_ip="10.1.0.1", method="OPTIONS") == 403
    assert status(config, remote_ip="10.9.0.1") == 403


def test_require_none_refuses_what_it_matches(tmp_path):
    body = "<RequireAll>\nRequire all granted\n<RequireNone>\nRequire ip 10.0.0.0/8\n</RequireNone>\n</RequireAll>"
    config = static_config(tmp_path, dir_conf(tmp_path, body), FILES)
    assert status(config, remote_ip="10.0.0.1") == 403
    assert status(config, remote_ip="192.0.2.1") == 200


def test_a_more_specific_section_replaces_the_inherited_requirements(tmp_path):
    conf = dir_conf(tmp_path, "Require all denied") + "\n" + dir_conf(tmp_path, "Require all granted", "htdocs/pub")
    config = static_config(tmp_path, conf, FILES)
    assert status(config, "/index.html") == 403
    assert status(config, "/pub/p.html") == 200


def test_location_requirements_apply_after_directory_ones(tmp_path):
    conf = dir_conf(tmp_path, "Require all granted") + "\n<Location /sub>\nRequire ip 127.0.0.1\n</Location>"
    config = static_config(tmp_path, conf, FILES)
    assert status(config, "/sub/a.html", remote_ip="127.0.0.1") == 200
    assert status(config, "/sub/a.html", remote_ip="192.0.2.1") == 403
    assert status(config, "/index.html", remote_ip="192.0.2.1") == 200


def test_auth_merging_and_combines_with_the_inherited_requirements(tmp_path):
    conf = dir_conf(tmp_path, "Require ip 127.0.0.1") + "\n" + dir_conf(
        tmp_path, "AuthMerging And\nRequire method GET HEAD", "htdocs/sub"
    )
    config = static_config(tmp_path, conf, FILES)
    assert status(config, "/sub/a.html") == 200
    assert status(config, "/sub/a.html", method="OPTIONS") == 403
    assert status(config, "/sub/a.html", remote_ip="192.0.2.1") == 403


def test_auth_merging_or_adds_another_way_in(tmp_path):
    conf = dir_conf(tmp_path, "Require ip 127.0.0.1") + "\n" + dir_conf(
        tmp_path, "AuthMerging Or\nRequire ip 192.0.2.0/24", "htdocs/sub"
    )
    config = static_config(tmp_path, conf, FILES)
    assert status(config, "/sub/a.html", remote_ip="192.0.2.1") == 200
    assert status(config, "/sub/a.html") == 200
    assert status(config, "/sub/a.html", remote_ip="198.51.100.1") == 403
    assert status(config, "/index.html", remote_ip="192.0.2.1") == 403


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Require not ip 10.0.0.1", "negative Require directive has no effect in <RequireAny> directive"),
        ("<RequireAll>\nRequire not ip 10.0.0.1\n</RequireAll>", "<RequireAll> directive contains only negative authorization directives"),
        ("<RequireAny>\nRequire all granted\nRequire not ip 10.0.0.1\n</RequireAny>", "negative Require directive has no effect in <RequireAny>"),
        ("Require ip 10.0.0.300", "ip address '10.0.0.300' appears to be invalid"),
        ("Require ip", "Require ip takes one or more IP addresses"),
        ("Require all maybe", "Require all takes one argument, 'granted' or 'denied'"),
        ("Require nosuch x", "Unknown Authz provider: nosuch"),
        ("<RequireAll>\n</RequireAll>", "contains no authorization directives"),
        ("<RequireAll>\nOptions None\n</RequireAll>", "Options not allowed in <RequireAll>"),
    ],
)
def test_bad_requirements_are_config_errors_naming_the_line(tmp_path, body, message):
    with pytest.raises(ConfigError) as raised:
        static_config(tmp_path, dir_conf(tmp_path, body), FILES)
    assert message in str(raised.value)
    assert "httpd.conf:" in str(raised.value)


def test_require_ip_needs_mod_authz_host(tmp_path):
    (tmp_path / "htdocs").mkdir()
    conf = tmp_path / "httpd.conf"
    conf.write_text(
        f"ServerRoot {tmp_path}\nLoadModule authz_core_module modules/mod_authz_core\n"
        "<Location />\nRequire ip 127.0.0.1\n</Location>\n"
    )
    with pytest.raises(ConfigError) as raised:
        Config.load(str(conf))
    assert str(raised.value) == f"{conf}:4: Require: Unknown Authz provider: ip"
