"""mod_alias: Alias, AliasMatch, Redirect and RedirectMatch."""

from __future__ import annotations

import pytest

from pyhttpd.conftree import ConfigError
from tests.unit.static_request import serve, static_config


@pytest.fixture
def files(tmp_path):
    (tmp_path / "icons").mkdir()
    (tmp_path / "icons" / "a.png").write_bytes(b"PNG")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "b.gif").write_bytes(b"GIF")
    return {"htdocs/iconsx/a.png": "docroot"}


def test_alias_maps_a_prefix_to_another_directory(tmp_path, files):
    config = static_config(tmp_path, f"Alias /icons {tmp_path}/icons", files)
    _, t = serve(config, "/icons/a.png")
    assert (t.status, bytes(t.out), t.content_type) == (200, b"PNG", "image/png")


def test_alias_matches_whole_segments_only(tmp_path, files):
    config = static_config(tmp_path, f"Alias /icons {tmp_path}/icons", files)
    assert bytes(serve(config, "/iconsx/a.png")[1].out) == b"docroot"


def test_alias_with_a_trailing_slash_needs_it_in_the_url(tmp_path, files):
    config = static_config(tmp_path, f"Alias /icons/ {tmp_path}/icons/", files)
    assert serve(config, "/icons/a.png")[1].status == 200
    assert serve(config, "/icons")[1].status == 404


def test_alias_paths_are_relative_to_server_root(tmp_path, files):
    config = static_config(tmp_path, "Alias /icons icons", files)
    assert serve(config, "/icons/a.png")[1].status == 200


def test_alias_match_substitutes_groups(tmp_path, files):
    config = static_config(tmp_path, f"AliasMatch ^/img/(.*)\\.gif$ {tmp_path}/images/$1.gif", files)
    _, t = serve(config, "/img/b.gif")
    assert (t.status, bytes(t.out)) == (200, b"GIF")


def test_the_first_matching_alias_wins(tmp_path, files):
    conf = f"Alias /icons/a.png {tmp_path}/images/b.gif\nAlias /icons {tmp_path}/icons"
    config = static_config(tmp_path, conf, files)
    assert bytes(serve(config, "/icons/a.png")[1].out) == b"GIF"


@pytest.mark.parametrize(
    ("directive", "target", "status", "location"),
    [
        ("Redirect /old http://new.example.com/new", "/old/a/b?x=1", 302, "http://new.example.com/new/a/b?x=1"),
        ("Redirect permanent /old http://n.example/", "/old", 301, "http://n.example/"),
        ("Redirect 303 /old http://n.example/x", "/old/y", 303, "http://n.example/x/y"),
        ("RedirectPermanent /old http://n.example/x", "/old/z", 301, "http://n.example/x/z"),
        ("RedirectTemp /old http://n.example/x", "/old", 302, "http://n.example/x"),
        ("Redirect /old /new", "/old/p", 302, "http://www.example.com/new/p"),
        ("Redirect /old http://n.example/x", "/old/a%20b", 302, "http://n.example/x/a%20b"),
        ("RedirectMatch ^/(.*)\\.jpg$ http://img.example/$1.png", "/pics/a.jpg", 302, "http://img.example/pics/a.png"),
        ("RedirectMatch 301 ^/go/(.*) http://x.example/?to=$1", "/go/home", 301, "http://x.example/?to=home"),
    ],
)
def test_redirects(tmp_path, files, directive, target, status, location):
    config = static_config(tmp_path, directive, files)
    _, t = serve(config, target)
    assert t.status == status
    assert t.header("Location") == location
    assert f'<a href="{location.replace("&", "&amp;")}">here</a>'.encode() in t.out


def test_redirect_matches_whole_segments_only(tmp_path, files):
    config = static_config(tmp_path, "Redirect /old http://n.example/", files)
    assert serve(config, "/older")[1].status == 404


def test_redirect_gone_is_410_without_location(tmp_path, files):
    config = static_config(tmp_path, "Redirect gone /removed", files)
    _, t = serve(config, "/removed/page")
    assert t.status == 410
    assert t.header("Location") is None


def test_redirects_are_tried_before_aliases(tmp_path, files):
    conf = f"Alias /icons {tmp_path}/icons\nRedirect /icons http://cdn.example/icons"
    config = static_config(tmp_path, conf, files)
    assert serve(config, "/icons/a.png")[1].header("Location") == "http://cdn.example/icons/a.png"


@pytest.mark.parametrize(
    ("directive", "message"),
    [
        ("Redirect /old", "URL to redirect to is missing"),
        ("Redirect gone /old http://x/", "Redirect URL not valid for status 410"),
        ("Redirect /old not-a-url", "Redirect to non-URL 'not-a-url'"),
        ("AliasMatch ^/(unclosed /x", "Regular expression could not be compiled"),
    ],
)
def test_bad_redirects_are_config_errors_naming_the_line(tmp_path, directive, message):
    with pytest.raises(ConfigError) as raised:
        static_config(tmp_path, directive)
    assert message in str(raised.value)
    assert "httpd.conf:" in str(raised.value)
