"""mod_dir: the trailing-slash redirect, DirectoryIndex and directories without an index."""

from __future__ import annotations

from tests.unit.static_request import serve, static_config

FILES = {
    "htdocs/docs/index.html": "<h1>docs</h1>",
    "htdocs/docs/start.htm": "start",
    "htdocs/empty/.keep": "",
    "htdocs/both/index.txt": "text index",
    "htdocs/both/index.html": "html index",
}


def test_a_directory_without_its_slash_is_301_to_the_url_with_it(tmp_path):
    config = static_config(tmp_path, files=FILES)
    _, t = serve(config, "/docs")
    assert t.status == 301
    assert t.header("Location") == "http://www.example.com/docs/"
    assert b'The document has moved <a href="http://www.example.com/docs/">here</a>.' in t.out


def test_the_slash_redirect_keeps_the_query_the_port_and_escapes_the_path(tmp_path):
    config = static_config(tmp_path, files={"htdocs/a dir/index.html": "x"})
    _, t = serve(config, "/a%20dir?x=1&y=2", local_port=8080, host="www.example.com:8080")
    assert t.header("Location") == "http://www.example.com:8080/a%20dir/?x=1&y=2"


def test_directory_slash_off_does_not_redirect(tmp_path):
    config = static_config(tmp_path, "DirectorySlash Off", files=FILES)
    _, t = serve(config, "/docs")
    assert t.status == 403
    assert t.header("Location") is None


def test_the_index_file_serves_the_directory(tmp_path):
    config = static_config(tmp_path, files=FILES)
    r, t = serve(config, "/docs/")
    assert t.status == 200
    assert t.content_type == "text/html"
    assert bytes(t.out) == b"<h1>docs</h1>"
    assert r.notes["internal_redirect"].uri == "/docs/index.html"


def test_directory_index_entries_are_tried_in_order(tmp_path):
    config = static_config(tmp_path, "DirectoryIndex index.txt index.html", files=FILES)
    assert bytes(serve(config, "/both/")[1].out) == b"text index"
    assert bytes(serve(config, "/docs/")[1].out) == b"<h1>docs</h1>"


def test_directory_index_is_per_directory(tmp_path):
    conf = f"<Directory {tmp_path}/htdocs/docs>\nDirectoryIndex start.htm\n</Directory>"
    config = static_config(tmp_path, conf, files=FILES)
    assert bytes(serve(config, "/docs/")[1].out) == b"start"
    assert bytes(serve(config, "/both/")[1].out) == b"html index"


def test_an_absolute_directory_index_is_an_internal_redirect_to_that_url(tmp_path):
    config = static_config(tmp_path, "DirectoryIndex /docs/start.htm", files=FILES)
    _, t = serve(config, "/empty/?q=1")
    assert (t.status, bytes(t.out)) == (200, b"start")


def test_a_directory_without_an_index_is_403_and_logged(tmp_path, capfd):
    config = static_config(tmp_path, files=FILES)
    _, t = serve(config, "/empty/")
    assert t.status == 403
    err = capfd.readouterr().err
    assert "[dir:error]" in err
    assert f"Cannot serve directory {tmp_path}/htdocs/empty/: No matching DirectoryIndex (index.html) found" in err


def test_directory_index_disabled_is_403(tmp_path):
    config = static_config(tmp_path, "DirectoryIndex disabled", files=FILES)
    assert serve(config, "/docs/")[1].status == 403


def test_the_document_root_itself_serves_its_index(tmp_path):
    config = static_config(tmp_path, files={"htdocs/index.html": "home"})
    _, t = serve(config, "/")
    assert (t.status, bytes(t.out)) == (200, b"home")
