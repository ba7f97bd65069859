"""mod_mime: content types from extensions, charsets, encodings, handlers and DefaultType."""

from __future__ import annotations

import pytest

from pyhttpd.conftree import ConfigError
from tests.unit.static_request import serve, static_config

FILES = {
    "htdocs/a.html": "x",
    "htdocs/a.css": "x",
    "htdocs/a.png": b"x",
    "htdocs/a.JPG": b"x",
    "htdocs/a.html.txt": "x",
    "htdocs/a.txt.zst1": b"x",
    "htdocs/README": "x",
    "htdocs/a.custom": "x",
    "htdocs/a.weird": "x",
}


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("a.html", "text/html"),
        ("a.css", "text/css"),
        ("a.png", "image/png"),
        ("a.JPG", "image/jpeg"),
        ("a.html.txt", "text/plain"),
    ],
)
def test_the_content_type_comes_from_mime_types(tmp_path, name, content_type):
    config = static_config(tmp_path, files=FILES)
    assert serve(config, f"/{name}")[1].content_type == content_type


def test_an_unknown_extension_gets_no_content_type_as_httpd_2_4(tmp_path):
    config = static_config(tmp_path, files=FILES)
    assert serve(config, "/README")[1].content_type is None
    assert serve(config, "/a.weird")[1].content_type is None


def test_default_type_is_the_fallback_for_unknown_extensions(tmp_path):
    config = static_config(tmp_path, "DefaultType application/octet-stream", files=FILES)
    assert serve(config, "/README")[1].content_type == "application/octet-stream"
    assert serve(config, "/a.html")[1].content_type == "text/html"


def test_add_type_overrides_the_table_per_directory(tmp_path):
    conf = (
        "AddType text/x-custom .custom\n"
        f"<Directory {tmp_path}/htdocs/sub>\nAddType text/plain html\n</Directory>"
    )
    files = {**FILES, "htdocs/sub/b.html": "x"}
    config = static_config(tmp_path, conf, files=files)
    assert serve(config, "/a.custom")[1].content_type == "text/x-custom"
    assert serve(config, "/a.html")[1].content_type == "text/html"
    assert serve(config, "/sub/b.html")[1].content_type == "text/plain"


def test_add_charset_adds_the_parameter(tmp_path):
    config = static_config(tmp_path, "AddCharset UTF-8 .html", files=FILES)
    assert serve(config, "/a.html")[1].content_type == "text/html; charset=UTF-8"


def test_add_encoding_sets_content_encoding_and_the_type_of_the_inner_file(tmp_path):
    config = static_config(tmp_path, "AddEncoding X-Zstd1 .zst1", files=FILES)
    _, t = serve(config, "/a.txt.zst1")
    assert t.header("Content-Encoding") == "x-zstd1"
    assert t.content_type == "text/plain"


def test_add_handler_picks_the_handler(tmp_path):
    config = static_config(tmp_path, "AddHandler no-such-handler .custom", files=FILES)
    r, t = serve(config, "/a.custom")
    assert r.handler == "no-such-handler"
    assert t.status == 500  # no module serves that handler, as httpd


def test_types_config_names_another_table(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "my.types").write_text("# comment\napplication/x-weird weird wrd\n")
    config = static_config(tmp_path, "TypesConfig conf/my.types", files=FILES)
    assert serve(config, "/a.weird")[1].content_type == "application/x-weird"
    assert serve(config, "/a.html")[1].content_type is None


def test_a_missing_types_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as raised:
        static_config(tmp_path, "TypesConfig conf/none.types")
    assert "TypesConfig: could not open mime types config file" in str(raised.value)


def test_force_type_wins_over_the_extension(tmp_path):
    conf = "<Files a.html>\nForceType text/plain\n</Files>"
    config = static_config(tmp_path, conf, files=FILES)
    assert serve(config, "/a.html")[1].content_type == "text/plain"


def test_force_type_none_undoes_an_inherited_force_type(tmp_path):
    conf = "ForceType text/plain\n<Files a.html>\nForceType None\n</Files>"
    config = static_config(tmp_path, conf, files=FILES)
    assert serve(config, "/a.html")[1].content_type == "text/html"
