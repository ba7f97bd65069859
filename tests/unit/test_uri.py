"""Request targets and Host headers: decoding, normalising and refusing traversal."""

from __future__ import annotations

import pytest

from pyhttpd.uri import UriError, decode_path, parse_host, split_target


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("/", "/"),
        ("/index.html", "/index.html"),
        ("/a/./b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a//b///c", "/a/b/c"),
        ("/a/%2e/b", "/a/b"),
        ("/a/b/%2E%2e/c", "/a/c"),
        ("/%7Euser/", "/~user/"),
        ("/caf%C3%A9", "/caf\u00e9"),
        ("/a%20b", "/a b"),
        ("/%252e%252e/x", "/%2e%2e/x"),
        ("/.well-known/x", "/.well-known/x"),
        ("/a/..b/c", "/a/..b/c"),
    ],
)
def test_paths_are_decoded_and_normalised_as_httpd_does(raw, decoded):
    assert decode_path(raw) == decoded


@pytest.mark.parametrize(
    "raw",
    [
        "/..",
        "/../etc/passwd",
        "/a/../../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/%2E%2E/%2e%2e/etc/passwd",
        "/.%2e/etc/passwd",
        "/a/%2e%2e/%2e%2e/etc/passwd",
        "//../etc/passwd",
    ],
)
def test_traversal_above_the_root_is_a_bad_request(raw):
    with pytest.raises(UriError) as e:
        decode_path(raw)
    assert e.value.status == 400


@pytest.mark.parametrize("raw", ["/a%2fb", "/..%2f..%2fetc/passwd", "/%2F", "/a/%2e%2e%2Fb"])
def test_an_encoded_slash_is_not_found_as_with_allow_encoded_slashes_off(raw):
    with pytest.raises(UriError) as e:
        decode_path(raw)
    assert e.value.status == 404


@pytest.mark.parametrize("raw", ["/a%00", "/index.html%00.txt"])
def test_an_encoded_nul_is_not_found(raw):
    with pytest.raises(UriError) as e:
        decode_path(raw)
    assert e.value.status == 404


@pytest.mark.parametrize("raw", ["/a%", "/a%2", "/a%zz", "/%g0"])
def test_a_malformed_escape_is_a_bad_request(raw):
    with pytest.raises(UriError) as e:
        decode_path(raw)
    assert e.value.status == 400


def test_a_path_not_starting_with_slash_is_a_bad_request():
    with pytest.raises(UriError) as e:
        decode_path("index.html")
    assert e.value.status == 400


def test_undecodable_bytes_survive_as_the_same_bytes_on_disk():
    path = decode_path("/x%FFy")
    assert path.encode("utf-8", "surrogateescape") == b"/x\xffy"


def test_origin_form_target_splits_path_and_raw_query():
    assert split_target("/p/a%20b?x=1&y=%20") == ("/p/a%20b", "x=1&y=%20", None)
    assert split_target("/p?") == ("/p", "", None)
    assert split_target("/p") == ("/p", None, None)


def test_absolute_form_target_gives_the_host_and_the_path():
    assert split_target("http://Example.COM:8080/p?q") == ("/p", "q", "example.com")
    assert split_target("https://example.com") == ("/", None, "example.com")
    assert split_target("http://example.com?q=1") == ("/", "q=1", "example.com")


def test_fragment_is_ignored():
    assert split_target("/p#frag") == ("/p", None, None)


def test_asterisk_is_kept_for_options():
    assert split_target("*").path == "*"


@pytest.mark.parametrize("target", ["ftp://example.com/", "example.com:443", "p?q", "http:/x"])
def test_other_targets_are_bad_requests(target):
    with pytest.raises(UriError) as e:
        split_target(target)
    assert e.value.status == 400


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("Example.COM.", ("example.com", None)),
        ("example.com:8080", ("example.com", 8080)),
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:8080", ("[::1]", 8080)),
        ("under_score", ("under_score", None)),
    ],
)
def test_host_header_gives_a_lowercase_name_and_port(value, expected):
    assert parse_host(value) == expected


@pytest.mark.parametrize(
    "value", ["exa mple.com", "a..b", "example.com:port", "a/b", "a\\b", "[::1", "host:99999", "é.com"]
)
def test_malformed_host_header_is_a_bad_request(value):
    with pytest.raises(UriError) as e:
        parse_host(value)
    assert e.value.status == 400
