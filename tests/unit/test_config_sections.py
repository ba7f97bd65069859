"""Per-request merge of sections in httpd's order, and virtual hosts over the main server."""

from __future__ import annotations

from pathlib import Path

from pyhttpd.config import Config
from pyhttpd.server import select_server

REPO = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str) -> Config:
    (tmp_path / "htdocs" / "sub" / "deeper").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "httpd.conf"
    path.write_text(f"ServerRoot {tmp_path}\nLoadModule hello_module {REPO}/examples/mod_hello.py\n{text}")
    return Config.load(str(path))


def greeting(config: Config, server, uri: str, filename: str | None = None) -> str | None:
    walker = server.walker
    sections = (walker.directory_sections(filename) if filename else []) + walker.location_sections(uri)
    return walker.merge(sections)["hello_module"].greeting


def test_location_overrides_directory_whatever_the_file_order(tmp_path):
    c = load(tmp_path, (
        "<Location /sub>\nHelloGreeting from-location\n</Location>\n"
        "<Directory htdocs/sub>\nHelloGreeting from-directory\n</Directory>\n"
    ))
    f = str(tmp_path / "htdocs/sub/x.html")
    assert greeting(c, c.main_server, "/sub/x.html", f) == "from-location"
    assert greeting(c, c.main_server, "/other", str(tmp_path / "htdocs/sub/y")) == "from-directory"


def test_directories_apply_shortest_path_first(tmp_path):
    c = load(tmp_path, (
        "<Directory htdocs/sub/deeper>\nHelloGreeting deep\n</Directory>\n"
        "<Directory htdocs>\nHelloGreeting shallow\n</Directory>\n"
    ))
    assert greeting(c, c.main_server, "/x", str(tmp_path / "htdocs/sub/deeper/f")) == "deep"
    assert greeting(c, c.main_server, "/x", str(tmp_path / "htdocs/sub/f")) == "shallow"


def test_files_override_directory_and_location_overrides_files(tmp_path):
    c = load(tmp_path, (
        "<Files *.txt>\nHelloGreeting files\n</Files>\n"
        "<Directory htdocs>\nHelloGreeting dir\n</Directory>\n"
    ))
    assert greeting(c, c.main_server, "/a.txt", str(tmp_path / "htdocs/a.txt")) == "files"
    assert greeting(c, c.main_server, "/a.html", str(tmp_path / "htdocs/a.html")) == "dir"


def test_later_location_in_file_order_wins_and_regex_sections_match(tmp_path):
    c = load(tmp_path, (
        "<LocationMatch ^/api/v[0-9]+/>\nHelloGreeting regex\n</LocationMatch>\n"
        "<Location /api>\nHelloGreeting prefix\n</Location>\n"
    ))
    assert greeting(c, c.main_server, "/api/v2/users") == "prefix"
    assert greeting(c, c.main_server, "/apix") is None


def test_location_matches_at_slash_boundaries_only(tmp_path):
    c = load(tmp_path, "<Location /private1>\nHelloGreeting p\n</Location>\n")
    for uri, expected in [("/private1", "p"), ("/private1/", "p"), ("/private1/x", "p"), ("/private1other", None)]:
        assert greeting(c, c.main_server, uri) == expected, uri


def test_virtual_host_sections_apply_after_main_server_sections(tmp_path):
    c = load(tmp_path, (
        "<Location /x>\nHelloGreeting main\n</Location>\n"
        "<VirtualHost *:80>\nServerName a.example\n<Location /x>\nHelloGreeting vhost\n</Location>\n</VirtualHost>\n"
    ))
    vhost = select_server(c, "127.0.0.1", 80, "a.example")
    assert vhost is c.vhosts[0]
    assert greeting(c, vhost, "/x") == "vhost"
    assert greeting(c, c.main_server, "/x") == "main"


def test_server_level_directives_are_inherited_by_virtual_hosts_unless_set(tmp_path):
    c = load(tmp_path, (
        "Timeout 17\nKeepAliveTimeout 3\n"
        "<VirtualHost *:80>\nServerName a.example\nKeepAliveTimeout 9\n</VirtualHost>\n"
    ))
    v = c.vhosts[0]
    assert (v.core.timeout, v.core.keep_alive_timeout) == (17, 9)
    assert c.main_server.core.keep_alive_timeout == 3


def test_name_based_virtual_hosts_choose_by_host_and_alias_with_first_as_default(tmp_path):
    c = load(tmp_path, (
        "<VirtualHost *:80>\nServerName first.example\n</VirtualHost>\n"
        "<VirtualHost *:80>\nServerName second.example\nServerAlias *.second.example\n</VirtualHost>\n"
        "<VirtualHost 127.0.0.1:81>\nServerName other-port.example\n</VirtualHost>\n"
    ))
    first, second, other = c.vhosts
    assert select_server(c, "127.0.0.1", 80, "second.example:80") is second
    assert select_server(c, "127.0.0.1", 80, "www.second.example") is second
    assert select_server(c, "127.0.0.1", 80, "unknown.example") is first
    assert select_server(c, "127.0.0.1", 80, None) is first
    assert select_server(c, "127.0.0.1", 81, "second.example") is other
    assert select_server(c, "127.0.0.1", 82, "second.example") is c.main_server


def options_for(config: Config, directory: str) -> frozenset[str]:
    walker = config.main_server.walker
    merged = walker.merge(walker.directory_sections(directory + "/f"))["core"]
    return merged.options


def test_relative_options_adjust_the_inherited_set_and_absolute_ones_replace_it(tmp_path):
    c = load(tmp_path, (
        "<Directory htdocs>\nOptions Indexes FollowSymLinks\n</Directory>\n"
        "<Directory htdocs/sub>\nOptions +ExecCGI -Indexes\n</Directory>\n"
        "<Directory htdocs/sub/deeper>\nOptions None\n</Directory>\n"
    ))
    assert options_for(c, str(tmp_path / "htdocs")) == {"Indexes", "FollowSymLinks"}
    assert options_for(c, str(tmp_path / "htdocs/sub")) == {"ExecCGI", "FollowSymLinks"}
    assert options_for(c, str(tmp_path / "htdocs/sub/deeper")) == frozenset()


def test_relative_options_without_anything_inherited_start_from_httpds_default(tmp_path):
    c = load(tmp_path, "<Directory htdocs/sub>\nOptions +Indexes\n</Directory>\n")
    assert options_for(c, str(tmp_path / "htdocs/sub")) == {"Indexes", "FollowSymLinks"}


def test_mixing_signed_and_unsigned_options_is_an_error(tmp_path):
    import pytest

    from pyhttpd.conftree import ConfigError

    with pytest.raises(ConfigError, match="Either all Options"):
        load(tmp_path, "Options +Indexes FollowSymLinks\n")
