"""URI to file mapping: nothing escapes DocumentRoot or an Alias target, symlink policy,
path_info."""

from __future__ import annotations

import os

import pytest

from pyhttpd import mapping
from pyhttpd.request import Connection, HTTPError, Request
from tests.unit.static_request import RecordingTransport, serve, static_config

SECRET = b"the password file"


@pytest.fixture
def root(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside" / "dir").mkdir()
    (tmp_path / "outside" / "dir" / "inner.txt").write_bytes(SECRET)
    return tmp_path


def make_config(root, conf=""):
    config = static_config(root, conf, files={"htdocs/f.txt": "file", "htdocs/sub/g.txt": "sub file"})
    os.symlink(root / "outside" / "secret.txt", root / "htdocs" / "link.txt")
    os.symlink(root / "outside" / "dir", root / "htdocs" / "dirlink")
    os.symlink(root / "htdocs" / "f.txt", root / "htdocs" / "inside.txt")
    return config


def never_leaks(t: RecordingTransport) -> bool:
    return SECRET not in bytes(t.out)


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/../outside/secret.txt", 400),
        ("/../../../../../../etc/passwd", 400),
        ("/sub/../../outside/secret.txt", 400),
        ("/%2e%2e/outside/secret.txt", 400),
        ("/%2E%2E/outside/secret.txt", 400),
        ("/.%2e/outside/secret.txt", 400),
        ("/sub/%2e%2e/%2e%2e/outside/secret.txt", 400),
        ("/..%2foutside%2fsecret.txt", 404),
        ("/%2e%2e%2foutside%2fsecret.txt", 404),
        ("/sub%2f..%2f..%2foutside/secret.txt", 404),
        ("/f.txt%00.html", 404),
        ("/%00", 404),
        ("/%252e%252e/outside/secret.txt", 404),
        ("/..%5coutside%5csecret.txt", 404),
        ("/..\\outside\\secret.txt", 404),
        ("http://www.example.com/../outside/secret.txt", 400),
    ],
)
def test_traversal_attempts_are_refused(root, target, status):
    config = make_config(root, f"<Directory {root}/htdocs>\nOptions None\n</Directory>")
    r, t = serve(config, target)
    assert t.status == status
    assert never_leaks(t)


def test_dot_segments_that_stay_inside_the_root_are_resolved(root):
    config = make_config(root)
    for target in ("/sub/../f.txt", "/sub/%2e%2e/f.txt", "/./sub/./g.txt", "//sub//g.txt"):
        r, t = serve(config, target)
        assert t.status == 200, target
        assert bytes(t.out) in (b"file", b"sub file")


def bare_request(config, uri: str, unparsed: str | None = None) -> Request:
    r = Request(config, Connection("127.0.0.1", 1, "127.0.0.1", 80), RecordingTransport())
    r.uri = uri
    r.unparsed_uri = unparsed if unparsed is not None else uri
    return r


@pytest.mark.parametrize(
    ("uri", "unparsed", "status"),
    [
        ("/../outside/secret.txt", None, 400),
        ("/sub/../../outside", None, 400),
        ("/./f.txt", None, 400),
        ("/f.txt\0", None, 404),
        ("/a/b", "/a%2Fb", 404),
        ("/a", "/a%00", 404),
    ],
)
def test_translate_refuses_what_the_protocol_should_never_pass(root, uri, unparsed, status):
    # Defence in depth: even a URI that skipped normalisation cannot leave DocumentRoot.
    config = make_config(root)
    with pytest.raises(HTTPError) as raised:
        mapping.translate_name(bare_request(config, uri, unparsed))
    assert raised.value.status == status


def test_an_encoded_slash_in_the_query_string_is_fine(root):
    config = make_config(root)
    assert serve(config, "/f.txt?next=%2Fhome")[1].status == 200


def test_symlinks_are_followed_by_default_as_httpd_2_4(root):
    # httpd 2.4's default is Options FollowSymLinks: the administrator's links are served.
    config = make_config(root)
    _, t = serve(config, "/link.txt")
    assert t.status == 200
    assert bytes(t.out) == SECRET


@pytest.mark.parametrize("target", ["/link.txt", "/dirlink/inner.txt", "/inside.txt", "/dirlink/"])
def test_symlinks_are_refused_without_follow_symlinks(root, target):
    config = make_config(root, f"<Directory {root}/htdocs>\nOptions None\n</Directory>")
    _, t = serve(config, target)
    assert t.status == 403
    assert never_leaks(t)


def test_a_symlink_is_judged_by_the_options_of_the_directory_holding_it(root):
    conf = (
        f"<Directory {root}/htdocs>\nOptions None\n</Directory>\n"
        f"<Directory {root}/htdocs/sub>\nOptions FollowSymLinks\n</Directory>\n"
    )
    os.makedirs(root / "htdocs" / "sub", exist_ok=True)
    os.symlink(root / "outside" / "secret.txt", root / "htdocs" / "sub" / "ok.txt")
    config = make_config(root, conf)
    assert serve(config, "/sub/ok.txt")[1].status == 200
    assert serve(config, "/link.txt")[1].status == 403


def test_symlinks_if_owner_match_follows_only_links_owned_like_their_target(root):
    config = make_config(root, f"<Directory {root}/htdocs>\nOptions SymLinksIfOwnerMatch\n</Directory>")
    assert serve(config, "/inside.txt")[1].status == 200
    os.lchown(root / "htdocs" / "link.txt", 4321, 4321)
    _, t = serve(config, "/link.txt")
    assert t.status == 403
    assert never_leaks(t)


def test_a_dangling_symlink_is_403_without_follow_symlinks(root):
    config = make_config(root, f"<Directory {root}/htdocs>\nOptions None\n</Directory>")
    os.symlink(root / "nowhere", root / "htdocs" / "dangling")
    assert serve(config, "/dangling")[1].status == 403


def test_alias_targets_are_confined_like_the_document_root(root):
    conf = (
        f"Alias /files {root}/files\n"
        f"<Directory {root}/files>\nOptions None\n</Directory>\n"
    )
    (root / "files").mkdir()
    (root / "files" / "a.txt").write_text("aliased")
    os.symlink(root / "outside" / "secret.txt", root / "files" / "link.txt")
    config = make_config(root, conf)
    _, t = serve(config, "/files/a.txt")
    assert (t.status, bytes(t.out)) == (200, b"aliased")
    assert serve(config, "/files/link.txt")[1].status == 403
    for target in ("/files/../outside/secret.txt", "/files/%2e%2e/outside/secret.txt", "/files/..%2fsecret"):
        _, t = serve(config, target)
        assert t.status in (400, 404)
        assert never_leaks(t)


def test_path_info_is_what_follows_a_file(root):
    config = make_config(root, "<Location /f.txt>\nSetHandler none-such\n</Location>")
    r, _ = serve(config, "/f.txt/extra/more")
    assert r.filename == str(root / "htdocs" / "f.txt")
    assert r.path_info == "/extra/more"


@pytest.mark.parametrize("options", ["", "Options None"])
def test_path_info_split_with_and_without_symlink_checks(root, options):
    config = make_config(root, f"<Directory {root}/htdocs>\n{options}\n</Directory>" if options else "")
    r, _ = serve(config, "/sub/g.txt/x/")
    assert (r.filename, r.path_info) == (str(root / "htdocs" / "sub" / "g.txt"), "/x/")
    r, _ = serve(config, "/sub/g.txt/")
    assert (r.filename, r.path_info) == (str(root / "htdocs" / "sub" / "g.txt"), "/")
    r, _ = serve(config, "/sub/none/x")
    assert r.finfo is None
    assert r.filename == str(root / "htdocs" / "sub" / "none" / "x")


def test_a_document_root_that_is_a_symlink_is_trusted(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.txt").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "site")
    config = static_config(tmp_path, f"DocumentRoot site\n<Directory {tmp_path}/site>\nOptions None\n</Directory>")
    assert serve(config, "/x.txt")[1].status == 200
