"""URI to file mapping: the core's translate_name (DocumentRoot) and map_to_storage.

translate_name turns the decoded, normalised `r.uri` into `r.filename` under DocumentRoot;
mod_alias does the same under an Alias target through `set_filename`, so both refuse what
could leave their root: NUL, `.`/`..` segments (however they were spelt on the wire) and an
encoded slash. map_to_storage stats the file once, splits off `path_info` as httpd's
directory walk does (`/file.cgi/extra` -> `/file.cgi` + `/extra`) and applies the symlink
policy: a symbolic link below the root is followed only where `Options FollowSymLinks` (the
default) or `SymLinksIfOwnerMatch` with matching owners is in force, else 403.

`construct_url` goes the other way, from a path to the absolute URL a redirect names.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING
from urllib.parse import quote

from pyhttpd.core import DEFAULT_OPTIONS
from pyhttpd.log import log_rerror
from pyhttpd.module import DECLINED, OK, REALLY_LAST
from pyhttpd.request import HTTPError

if TYPE_CHECKING:
    from pyhttpd.hooks import Hooks
    from pyhttpd.request import Request
    from pyhttpd.server import Server

ROOT_NOTE = "mapping.root"  # r.notes: the directory r.filename was mapped under


def document_root(server: Server) -> str:
    """The DocumentRoot of a server (ServerRoot/htdocs when none is configured)."""
    return server.core.document_root or server.config.resolve("htdocs")


def set_filename(r: Request, root: str, filename: str) -> None:
    """Map `r` to `filename`, which must lie under the directory `root`.

    Raises HTTPError(404) for NUL or an encoded slash in the URL and HTTPError(400) for a
    `.` or `..` segment below `root`, so no spelling of a URL can name a file elsewhere.
    """
    root = root.rstrip("/")
    rest = filename[len(root):]
    if not filename.startswith(root) or (rest and rest[0] != "/"):
        raise HTTPError(400, f"mapped file {filename!r} is outside {root or '/'}")
    if "\0" in rest:
        raise HTTPError(404, f"NUL in URI path {r.uri!r}")
    if "/." in rest and any(seg in (".", "..") for seg in rest.split("/")):
        raise HTTPError(400, f"Invalid URI path {r.uri!r}: it has a '.' or '..' segment")
    raw = r.unparsed_uri
    if "%" in raw:
        path = raw.split("?", 1)[0].lower()
        if "%2f" in path or "%00" in path:
            raise HTTPError(404, f"found %2f (encoded '/') or %00 in URI path ({raw}), returning 404")
    r.filename = filename
    r.notes[ROOT_NOTE] = root or "/"


def translate_name(r: Request) -> int:
    """DocumentRoot + r.uri (httpd's core translate, run after every module's)."""
    uri = r.uri
    if not uri.startswith("/"):
        if uri == "*":
            return OK  # OPTIONS *: no file
        raise HTTPError(400, f"Invalid URI in request {r.the_request}")
    root = document_root(r.server)
    set_filename(r, root, root.rstrip("/") + uri)
    return OK


def map_to_storage(r: Request) -> int:
    """Stat r.filename, split off path_info and enforce the symlink policy."""
    filename = r.filename
    if not filename or filename[0] != "/":
        return DECLINED
    follows = r.server.walker.follows_symlinks_everywhere  # type: ignore[union-attr]
    if follows is None:
        follows = _follows_symlinks_everywhere(r.server)
    if follows:
        try:
            r.finfo = os.stat(filename)
        except OSError as e:
            if e.errno == errno.ENOTDIR:
                _split_path_info(r, filename)
            elif e.errno != errno.ENOENT:
                _refuse(r, filename, e)
    else:
        _walk_without_symlinks(r, r.notes.get(ROOT_NOTE, "/"), filename)
    r.canonical_filename = r.filename
    return OK


def _split_path_info(r: Request, filename: str) -> None:
    """Find the regular file some component of `filename` is; the rest is path_info."""
    path = ""
    for part in filename.split("/")[1:]:
        path += "/" + part
        try:
            st = os.stat(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                _refuse(r, path, e)
            return
        if stat.S_ISREG(st.st_mode):
            _file_with_path_info(r, path, filename, st)
            return


def _file_with_path_info(r: Request, path: str, filename: str, st: os.stat_result) -> None:
    r.filename = path
    r.path_info = filename[len(path):]
    r.finfo = st


def _walk_without_symlinks(r: Request, root: str, filename: str) -> None:
    """httpd's directory walk below `root`: lstat each component, judge each symlink by the
    Options of the directory holding it, stop at a regular file (the rest is path_info)."""
    path = root.rstrip("/") if filename.startswith(root) else ""
    try:
        st = os.stat(path or "/")
    except OSError as e:
        if e.errno != errno.ENOENT:
            _refuse(r, path or "/", e)
        return
    for part in filename[len(path):].split("/")[1:]:
        if not part:
            continue  # a trailing slash
        parent, path = path, f"{path}/{part}"
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                st = _follow(r, parent or "/", path, st)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                _refuse(r, path, e)
            return
        if not stat.S_ISDIR(st.st_mode):
            if len(path) == len(filename):
                r.finfo = st
            elif stat.S_ISREG(st.st_mode):
                _file_with_path_info(r, path, filename, st)
            return  # else something that is neither file nor directory mid-path: nothing there
    r.finfo = st


def _follow(r: Request, directory: str, link: str, lst: os.stat_result) -> os.stat_result:
    """The stat of a symlink's target when the Options of `directory` allow following it."""
    options = directory_options(r, directory)
    if "FollowSymLinks" in options:
        try:
            return os.stat(link)
        except OSError:
            pass
    elif "SymLinksIfOwnerMatch" in options:
        try:
            target = os.stat(link)
        except OSError:
            pass
        else:
            if target.st_uid == lst.st_uid:
                return target
    log_rerror(r, "error", "core", f"Symbolic link not allowed or link target not accessible: {link}")
    raise HTTPError(403)


def directory_options(r: Request, directory: str) -> frozenset[str]:
    """The Options in force for a directory: its <Directory> sections over the server's."""
    walker = r.server.walker
    assert walker is not None
    sections = [s for s in walker.directories if s.matches(directory)]
    sections += [s for s in walker.directory_regex if s.matches(directory)]
    options = walker.merge(sections)["core"].options
    return DEFAULT_OPTIONS if options is None else options


def _follows_symlinks_everywhere(server: Server) -> bool:
    """Whether no Options anywhere in the server's directory config turns symlinks off
    (worked out once, kept by the server's walker)."""
    walker = server.walker
    assert walker is not None
    configs = [server.lookup_defaults.get("core")]
    configs += [s.dir_config.get("core") for s in walker.directories + walker.directory_regex]
    known = all(
        c is None
        or ((c.options is None or "FollowSymLinks" in c.options) and "FollowSymLinks" not in (c.options_remove or ()))
        for c in configs
    )
    walker.follows_symlinks_everywhere = known
    return known


def _refuse(r: Request, path: str, e: OSError) -> None:
    log_rerror(
        r, "error", "core",
        f"({e.errno}){e.strerror}: access to {r.uri} denied (filesystem path '{path}')",
    )
    raise HTTPError(403)


# What ap_escape_uri leaves alone in a path.
PATH_SAFE = "$-_.+!*'(),:@&=/~"
DEFAULT_PORTS = {"http": 80, "https": 443}


def escape_path(path: str) -> str:
    """Percent-encode a decoded path for a Location header (ap_escape_uri)."""
    return quote(path, safe=PATH_SAFE)


def construct_url(r: Request, path: str) -> str:
    """The absolute URL of an (already escaped) path on this server, named as the client
    named it: the Host it sent and the port it connected to (UseCanonicalName Off)."""
    c = r.connection
    host = r.hostname or r.server.server_hostname or c.local_ip
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = c.local_port
    if port and port != DEFAULT_PORTS.get(r.scheme):
        host = f"{host}:{port}"
    return f"{r.scheme}://{host}{path}"


def register_hooks(hooks: Hooks) -> None:
    """The core's translate_name and map_to_storage, after every module's."""
    hooks.register("translate_name", translate_name, REALLY_LAST, module="core")
    hooks.register("map_to_storage", map_to_storage, REALLY_LAST, module="core")
