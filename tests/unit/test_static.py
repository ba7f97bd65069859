"""The default handler: files with their validators, methods, conditional and range requests."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyhttpd import default_handler
from pyhttpd.default_handler import http_date, parse_ranges
from tests.unit.static_request import serve, static_config

BODY = b"0123456789abcdefghij"  # 20 bytes
OLD = 1_600_000_000  # an mtime long past: strong ETag
OLD_DATE = http_date(OLD)


@pytest.fixture
def config(tmp_path):
    config = static_config(tmp_path, files={"htdocs/f.txt": BODY, "htdocs/page.html": "<p>hi</p>"})
    os.utime(tmp_path / "htdocs/f.txt", (OLD, OLD))
    return config


def etag_of(config) -> str:
    return serve(config, "/f.txt", "HEAD")[1].header("ETag")


def test_file_is_served_with_type_length_etag_and_last_modified(config):
    r, t = serve(config, "/f.txt")
    assert t.status == 200
    assert t.content_type == "text/plain"
    assert t.header("Content-Length") == "20"
    assert t.header("Last-Modified") == "Sun, 13 Sep 2020 12:26:40 GMT"
    assert t.header("ETag") == f'"14-{OLD * 1_000_000:x}"'
    assert t.header("Accept-Ranges") == "bytes"
    assert bytes(t.out) == BODY
    assert r.bytes_sent == 20


def test_etag_is_weak_for_a_file_changed_within_the_last_second(config, tmp_path):
    (tmp_path / "htdocs/new.txt").write_bytes(b"x")
    _, t = serve(config, "/new.txt")
    mtime_us = (tmp_path / "htdocs/new.txt").stat().st_mtime_ns // 1000
    assert t.header("ETag") == f'W/"1-{mtime_us:x}"'


def test_head_sends_the_headers_of_get_without_a_body(config):
    r, t = serve(config, "/f.txt", "HEAD")
    assert t.status == 200
    assert t.header("Content-Length") == "20"
    assert t.out == b""
    assert r.bytes_sent == 0


def test_missing_file_is_404(config):
    _, t = serve(config, "/nothing.txt")
    assert t.status == 404
    assert b"The requested URL was not found on this server." in t.out


def test_path_info_after_a_file_is_404(config):
    assert serve(config, "/f.txt/more")[1].status == 404
    assert serve(config, "/f.txt/")[1].status == 404


def test_options_answers_with_the_allowed_methods(config):
    _, t = serve(config, "/f.txt", "OPTIONS")
    assert t.status == 200
    assert t.header("Allow") == "GET,POST,OPTIONS,HEAD"
    assert t.out == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_methods_that_would_change_a_file_are_405_with_allow(config, method):
    _, t = serve(config, "/f.txt", method, body=b"data")
    assert t.status == 405
    assert t.header("Allow") == "GET,POST,OPTIONS,HEAD"


def test_unknown_method_is_501(config):
    assert serve(config, "/f.txt", "BREW")[1].status == 501


# -- conditional requests --------------------------------------------------------------


def test_if_none_match_with_the_current_etag_is_304_with_etag_and_no_body(config):
    etag = etag_of(config)
    _, t = serve(config, "/f.txt", headers={"If-None-Match": f'"other", {etag}'})
    assert t.status == 304
    assert t.header("ETag") == etag
    assert t.header("Content-Length") is None
    assert t.out == b""


def test_if_none_match_compares_weakly(config):
    etag = etag_of(config)
    assert serve(config, "/f.txt", headers={"If-None-Match": "W/" + etag})[1].status == 304


def test_if_none_match_star_is_304_and_another_etag_is_200(config):
    assert serve(config, "/f.txt", headers={"If-None-Match": "*"})[1].status == 304
    _, t = serve(config, "/f.txt", headers={"If-None-Match": '"nope"'})
    assert t.status == 200
    assert bytes(t.out) == BODY


def test_if_modified_since_the_mtime_or_later_is_304(config):
    assert serve(config, "/f.txt", headers={"If-Modified-Since": OLD_DATE})[1].status == 304
    later = http_date(OLD + 3600)
    assert serve(config, "/f.txt", headers={"If-Modified-Since": later})[1].status == 304


def test_if_modified_since_before_the_mtime_in_the_future_or_garbled_is_200(config):
    for value in (http_date(OLD - 1), http_date(int(time.time()) + 86400), "yesterday"):
        assert serve(config, "/f.txt", headers={"If-Modified-Since": value})[1].status == 200


def test_if_modified_since_is_ignored_when_if_none_match_is_present(config):
    headers = {"If-None-Match": '"nope"', "If-Modified-Since": OLD_DATE}
    assert serve(config, "/f.txt", headers=headers)[1].status == 200


def test_if_match_with_another_etag_is_412(config):
    assert serve(config, "/f.txt", headers={"If-Match": '"nope"'})[1].status == 412
    assert serve(config, "/f.txt", headers={"If-Match": etag_of(config)})[1].status == 200
    assert serve(config, "/f.txt", headers={"If-Match": "*"})[1].status == 200


def test_if_match_needs_a_strong_etag(config):
    assert serve(config, "/f.txt", headers={"If-Match": "W/" + etag_of(config)})[1].status == 412


def test_if_unmodified_since_before_the_mtime_is_412(config):
    assert serve(config, "/f.txt", headers={"If-Unmodified-Since": http_date(OLD - 60)})[1].status == 412
    assert serve(config, "/f.txt", headers={"If-Unmodified-Since": OLD_DATE})[1].status == 200


# -- ranges ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "content_range", "body"),
    [
        ("bytes=0-4", "bytes 0-4/20", BODY[0:5]),
        ("bytes=15-", "bytes 15-19/20", BODY[15:]),
        ("bytes=-3", "bytes 17-19/20", BODY[17:]),
        ("bytes=10-999", "bytes 10-19/20", BODY[10:]),
        ("bytes=0-4,3-8", "bytes 0-8/20", BODY[0:9]),
        ("bytes=5-9,10-12", "bytes 5-12/20", BODY[5:13]),
        ("bytes=-100", "bytes 0-19/20", BODY),
    ],
)
def test_a_single_range_is_206_with_content_range(config, spec, content_range, body):
    _, t = serve(config, "/f.txt", headers={"Range": spec})
    assert t.status == 206
    assert t.header("Content-Range") == content_range
    assert t.header("Content-Length") == str(len(body))
    assert bytes(t.out) == body


def test_several_ranges_are_multipart_byteranges(config):
    _, t = serve(config, "/f.txt", headers={"Range": "bytes=0-1,10-11,-2"})
    assert t.status == 206
    kind, _, boundary = t.content_type.partition("; boundary=")
    assert kind == "multipart/byteranges"
    body = bytes(t.out)
    assert t.header("Content-Length") == str(len(body))
    parts = body.split(f"\r\n--{boundary}".encode())
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    seen = []
    for part in parts[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        lines = head.decode().strip().split("\r\n")
        assert lines[0] == "Content-type: text/plain"
        seen.append((lines[1], data))
    assert seen == [
        ("Content-range: bytes 0-1/20", b"01"),
        ("Content-range: bytes 10-11/20", b"ab"),
        ("Content-range: bytes 18-19/20", b"ij"),
    ]


def test_unsatisfiable_range_is_416_with_the_size(config):
    _, t = serve(config, "/f.txt", headers={"Range": "bytes=20-30"})
    assert t.status == 416
    assert t.header("Content-Range") == "bytes */20"


@pytest.mark.parametrize("spec", ["bytes=a-b", "bytes=5-2", "items=0-1", "bytes=", "bytes=1-2,x", "bytes=--1"])
def test_a_malformed_range_is_ignored(config, spec):
    _, t = serve(config, "/f.txt", headers={"Range": spec})
    assert t.status == 200
    assert bytes(t.out) == BODY


def test_more_ranges_than_max_ranges_get_the_whole_file(config):
    spec = "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 20, 2)) + ",0-0" * 200
    _, t = serve(config, "/f.txt", headers={"Range": spec})
    assert t.status == 200


def test_if_range_with_the_current_validator_allows_the_range(config):
    etag = etag_of(config)
    for validator in (etag, OLD_DATE):
        _, t = serve(config, "/f.txt", headers={"Range": "bytes=0-1", "If-Range": validator})
        assert t.status == 206


def test_if_range_with_an_old_validator_gets_the_whole_file(config):
    for validator in ('"old"', http_date(OLD - 10)):
        _, t = serve(config, "/f.txt", headers={"Range": "bytes=0-1", "If-Range": validator})
        assert t.status == 200
        assert bytes(t.out) == BODY


def test_head_with_a_range_is_206_without_a_body(config):
    _, t = serve(config, "/f.txt", "HEAD", headers={"Range": "bytes=0-1"})
    assert t.status == 206
    assert t.header("Content-Length") == "2"
    assert t.out == b""


specs = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 60), st.integers(0, 60)).map(lambda p: f"{min(p)}-{max(p)}"),
        st.integers(0, 60).map(lambda n: f"{n}-"),
        st.integers(1, 60).map(lambda n: f"-{n}"),
    ),
    min_size=1,
    max_size=8,
)


@given(size=st.integers(0, 50), items=specs)
def test_parsed_ranges_cover_exactly_the_satisfiable_bytes(size, items):
    wanted: set[int] = set()
    for item in items:
        first, _, last = item.partition("-")
        if first == "":
            wanted.update(range(max(size - int(last), 0), size))
        else:
            wanted.update(range(int(first), min(int(last) if last else size - 1, size - 1) + 1))
    ranges = parse_ranges("bytes=" + ",".join(items), size)
    assert ranges is not None
    covered: set[int] = set()
    for first, last in ranges:
        assert 0 <= first <= last < size
        covered.update(range(first, last + 1))
    assert covered == wanted


def test_non_ascii_and_non_utf8_file_names_are_served(config, tmp_path):
    (tmp_path / "htdocs" / "caf\u00e9.txt").write_bytes(b"utf8 name")
    with open(os.path.join(os.fsencode(tmp_path), b"htdocs", b"caf\xe9.bin"), "wb") as f:
        f.write(b"latin-1 name")
    assert bytes(serve(config, "/caf%C3%A9.txt")[1].out) == b"utf8 name"
    assert bytes(serve(config, "/caf%E9.bin")[1].out) == b"latin-1 name"


def test_a_file_changed_in_place_is_served_with_its_new_contents(config, tmp_path):
    path = tmp_path / "htdocs" / "f.txt"
    time.sleep(1.1)  # the file's last change is now old enough for its contents to be kept
    assert bytes(serve(config, "/f.txt")[1].out) == BODY
    assert bytes(serve(config, "/f.txt")[1].out) == BODY
    with open(path, "r+b") as f:  # same size, same mtime: only the ctime tells
        f.write(b"ABCDEFGHIJ")
    os.utime(path, (OLD, OLD))
    assert bytes(serve(config, "/f.txt")[1].out) == b"ABCDEFGHIJabcdefghij"


def test_a_file_replaced_by_another_of_the_same_size_and_mtime_is_served_anew(config, tmp_path):
    time.sleep(1.1)
    assert bytes(serve(config, "/f.txt")[1].out) == BODY
    (tmp_path / "htdocs" / "f.new").write_bytes(BODY.upper())
    os.utime(tmp_path / "htdocs" / "f.new", (OLD, OLD))
    os.rename(tmp_path / "htdocs" / "f.new", tmp_path / "htdocs" / "f.txt")
    assert bytes(serve(config, "/f.txt")[1].out) == BODY.upper()


def test_files_beyond_what_a_child_keeps_in_memory_are_still_served_whole(config, tmp_path, monkeypatch):
    monkeypatch.setattr(default_handler, "KEPT_FILES_BYTES", 2 * len(BODY))
    for name in ("a", "b", "c"):
        (tmp_path / "htdocs" / f"{name}.txt").write_bytes(name.encode() * len(BODY))
        os.utime(tmp_path / "htdocs" / f"{name}.txt", (OLD, OLD))
    time.sleep(1.1)
    for _ in range(2):
        for name in ("a", "b", "c", "a"):
            assert bytes(serve(config, f"/{name}.txt")[1].out) == name.encode() * len(BODY)
