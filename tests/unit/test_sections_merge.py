"""Virtual hosts chosen by Host and port, <Directory>/<Files>/<Location> merged in httpd's
order, and SetHandler."""

from __future__ import annotations

import pytest

from tests.unit.static_request import serve, static_config

HANDLER_MODULE = '''
from pyhttpd.module import DECLINED, OK, Module


def handler(r):
    if r.handler != "show-handler":
        return DECLINED
    r.content_type = "text/plain"
    r.write(f"{r.handler} {r.filename} {r.content_type}".encode())
    return OK


class ShowModule(Module):
    name = "show"

    def register_hooks(self, hooks):
        hooks.register("handler", handler)


show_module = ShowModule()
'''


# -- virtual hosts ---------------------------------------------------------------------


@pytest.fixture
def vhosts(tmp_path):
    files = {f"{site}/index.html": site for site in ("htdocs", "site_a", "site_b", "site_8080", "site_ip")}
    conf = (
        "<VirtualHost *:80>\nServerName a.example\nDocumentRoot site_a\n</VirtualHost>\n"
        "<VirtualHost *:80>\nServerName b.example\nServerAlias www.b.example *.cdn.b.example\n"
        "DocumentRoot site_b\n</VirtualHost>\n"
        "<VirtualHost *:8080>\nServerName a.example\nDocumentRoot site_8080\n</VirtualHost>\n"
        "<VirtualHost 127.0.0.2:80>\nServerName ip.example\nDocumentRoot site_ip\n</VirtualHost>\n"
    )
    return static_config(tmp_path, conf, files)


def site(config, host, local_port=80, local_ip="127.0.0.1") -> str:
    _, t = serve(config, "/", host=host, local_port=local_port, local_ip=local_ip)
    assert t.status == 200
    return bytes(t.out).decode()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("a.example", "site_a"),
        ("b.example", "site_b"),
        ("A.Example", "site_a"),
        ("a.example:80", "site_a"),
        ("a.example.", "site_a"),
        ("www.b.example", "site_b"),
        ("img.cdn.b.example", "site_b"),
        ("unknown.example", "site_a"),
        (None, "site_a"),
    ],
)
def test_name_based_virtual_hosts_by_server_name_and_alias(vhosts, host, expected):
    # The first vhost for an address is its default: unknown names and HTTP/1.0 without Host.
    assert site(vhosts, host) == expected


def test_virtual_hosts_by_port(vhosts):
    assert site(vhosts, "a.example", local_port=8080) == "site_8080"
    assert site(vhosts, "b.example", local_port=8080) == "site_8080"


def test_an_ip_based_virtual_host_wins_for_its_address(vhosts):
    assert site(vhosts, "a.example", local_ip="127.0.0.2") == "site_ip"


def test_a_connection_no_virtual_host_listens_on_gets_the_main_server(vhosts):
    assert site(vhosts, "a.example", local_port=9999) == "htdocs"


def test_virtual_hosts_inherit_what_they_do_not_set(tmp_path):
    conf = (
        "DirectoryIndex home.html\nAddType text/x-main .m\n"
        "<VirtualHost *:80>\nServerName v.example\nDocumentRoot site\nAddType text/x-vhost .v\n</VirtualHost>"
    )
    config = static_config(tmp_path, conf, {"site/home.html": "home", "site/a.m": "", "site/a.v": ""})
    assert bytes(serve(config, "/", host="v.example")[1].out) == b"home"
    assert serve(config, "/a.m", host="v.example")[1].content_type == "text/x-main"
    assert serve(config, "/a.v", host="v.example")[1].content_type == "text/x-vhost"


# -- merge order -----------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    return {"htdocs/sub/deep/a.x": "a", "htdocs/sub/b.y": "b", "htdocs/c.x": "c"}


def content_type(config, target, host="www.example.com") -> str | None:
    return serve(config, target, host=host)[1].content_type


def test_directories_merge_shortest_path_first(tmp_path, tree):
    conf = (
        f"<Directory {tmp_path}/htdocs/sub>\nForceType text/sub\n</Directory>\n"
        f"<Directory {tmp_path}/htdocs>\nForceType text/htdocs\n</Directory>\n"
    )
    config = static_config(tmp_path, conf, tree)
    assert content_type(config, "/c.x") == "text/htdocs"
    assert content_type(config, "/sub/deep/a.x") == "text/sub"


def test_directory_match_applies_after_plain_directories(tmp_path, tree):
    conf = (
        '<DirectoryMatch "/deep$">\nForceType text/match\n</DirectoryMatch>\n'
        f"<Directory {tmp_path}/htdocs/sub/deep>\nForceType text/plain-dir\n</Directory>\n"
    )
    config = static_config(tmp_path, conf, tree)
    assert content_type(config, "/sub/deep/a.x") == "text/match"


def test_files_apply_after_directories_and_location_after_files(tmp_path, tree):
    conf = (
        "<Location /sub>\nForceType text/location\n</Location>\n"
        '<Files "*.x">\nForceType text/files\n</Files>\n'
        f"<Directory {tmp_path}/htdocs/sub>\nForceType text/directory\n</Directory>\n"
    )
    config = static_config(tmp_path, conf, tree)
    assert content_type(config, "/sub/deep/a.x") == "text/location"
    assert content_type(config, "/c.x") == "text/files"
    assert content_type(config, "/sub/b.y") == "text/location"


def test_files_inside_a_directory_only_match_there(tmp_path, tree):
    conf = f'<Directory {tmp_path}/htdocs/sub>\n<Files "*.x">\nForceType text/inner\n</Files>\n</Directory>'
    config = static_config(tmp_path, conf, tree)
    assert content_type(config, "/sub/deep/a.x") == "text/inner"
    assert content_type(config, "/c.x") != "text/inner"


def test_later_locations_override_earlier_ones(tmp_path, tree):
    conf = (
        "<Location /sub>\nForceType text/first\n</Location>\n"
        "<LocationMatch ^/sub/deep>\nForceType text/second\n</LocationMatch>\n"
    )
    config = static_config(tmp_path, conf, tree)
    assert content_type(config, "/sub/deep/a.x") == "text/second"
    assert content_type(config, "/sub/b.y") == "text/first"


def test_location_matches_whole_segments(tmp_path, tree):
    config = static_config(tmp_path, "<Location /su>\nForceType text/wrong\n</Location>", tree)
    assert content_type(config, "/sub/b.y") != "text/wrong"


def test_a_virtual_hosts_sections_apply_after_the_main_servers(tmp_path, tree):
    conf = (
        "<Location /sub>\nForceType text/main\n</Location>\n"
        "<VirtualHost *:80>\nServerName v.example\nDocumentRoot htdocs\n"
        "<Location /sub>\nForceType text/vhost\n</Location>\n</VirtualHost>\n"
        "<VirtualHost *:80>\nServerName w.example\nDocumentRoot htdocs\n</VirtualHost>\n"
    )
    config = static_config(tmp_path, conf, tree)
    assert content_type(config, "/sub/b.y", host="v.example") == "text/vhost"
    assert content_type(config, "/sub/b.y", host="w.example") == "text/main"


# -- SetHandler --------------------------------------------------------------------------


@pytest.fixture
def handler_conf(tmp_path):
    (tmp_path / "show.py").write_text(HANDLER_MODULE)
    return f"LoadModule show_module {tmp_path}/show.py\n"


def test_set_handler_in_a_location_picks_the_handler(tmp_path, tree, handler_conf):
    conf = handler_conf + "<Location /tools>\nSetHandler show-handler\n</Location>"
    config = static_config(tmp_path, conf, tree)
    _, t = serve(config, "/tools/anything")
    assert t.status == 200
    assert bytes(t.out) == f"show-handler {tmp_path}/htdocs/tools/anything text/plain".encode()
    assert bytes(serve(config, "/c.x")[1].out) == b"c"


def test_set_handler_none_turns_it_off_below(tmp_path, tree, handler_conf):
    conf = handler_conf + (
        "<Location />\nSetHandler show-handler\n</Location>\n"
        "<Location /sub>\nSetHandler none\n</Location>\n"
    )
    config = static_config(tmp_path, conf, tree)
    assert bytes(serve(config, "/c.x")[1].out).startswith(b"show-handler")
    assert bytes(serve(config, "/sub/b.y")[1].out) == b"b"


def test_set_handler_wins_over_add_handler(tmp_path, tree, handler_conf):
    conf = handler_conf + "AddHandler other-handler .x\n<Files c.x>\nSetHandler show-handler\n</Files>"
    config = static_config(tmp_path, conf, tree)
    assert bytes(serve(config, "/c.x")[1].out).startswith(b"show-handler")
    assert serve(config, "/sub/deep/a.x")[1].status == 500


def test_an_unknown_handler_is_500(tmp_path, tree):
    config = static_config(tmp_path, "<Location /x>\nSetHandler nobody-serves-this\n</Location>", tree)
    assert serve(config, "/x")[1].status == 500
