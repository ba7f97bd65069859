"""ErrorDocument with the static modules: a text, a local URL, an external URL."""

from __future__ import annotations

from tests.unit.static_request import serve, static_config

FILES = {"htdocs/errors/404.html": "<h1>custom 404</h1>", "htdocs/errors/403.html": "<h1>go away</h1>"}


def test_a_text_error_document_is_the_body(tmp_path):
    config = static_config(tmp_path, 'ErrorDocument 404 "Sorry, no such page"', FILES)
    _, t = serve(config, "/missing")
    assert (t.status, bytes(t.out)) == (404, b"Sorry, no such page")


def test_a_local_url_is_served_with_the_error_status(tmp_path):
    config = static_config(tmp_path, "ErrorDocument 404 /errors/404.html", FILES)
    r, t = serve(config, "/missing?a=1")
    assert t.status == 404
    assert t.content_type == "text/html"
    assert bytes(t.out) == b"<h1>custom 404</h1>"
    redirected = r.notes["internal_redirect"]
    assert redirected.subprocess_env["REDIRECT_STATUS"] == "404"
    assert redirected.subprocess_env["REDIRECT_URL"] == "/missing"


def test_a_local_error_document_is_never_turned_into_304_or_206(tmp_path):
    config = static_config(tmp_path, "ErrorDocument 404 /errors/404.html", FILES)
    _, t = serve(config, "/missing", headers={"If-None-Match": "*", "Range": "bytes=0-1"})
    assert t.status == 404
    assert bytes(t.out) == b"<h1>custom 404</h1>"


def test_an_external_url_is_a_302_to_it(tmp_path):
    config = static_config(tmp_path, "ErrorDocument 404 http://errors.example.com/nf", FILES)
    _, t = serve(config, "/missing")
    assert t.status == 302
    assert t.header("Location") == "http://errors.example.com/nf"


def test_a_missing_local_error_document_falls_back_to_the_built_in_page(tmp_path):
    config = static_config(tmp_path, "ErrorDocument 404 /errors/none.html", FILES)
    _, t = serve(config, "/missing")
    assert t.status == 404
    assert b"<title>404 Not Found</title>" in t.out


def test_error_documents_apply_per_section_and_to_denials(tmp_path):
    conf = (
        "ErrorDocument 403 /errors/403.html\n"
        f"<Directory {tmp_path}/htdocs/private>\nRequire all denied\n</Directory>\n"
        "<Location /loud>\nErrorDocument 404 \"loud not found\"\n</Location>"
    )
    config = static_config(tmp_path, conf, {**FILES, "htdocs/private/x.html": "secret"})
    _, t = serve(config, "/private/x.html")
    assert (t.status, bytes(t.out)) == (403, b"<h1>go away</h1>")
    assert bytes(serve(config, "/loud/x")[1].out) == b"loud not found"
    assert bytes(serve(config, "/quiet/x")[1].out) != b"loud not found"
