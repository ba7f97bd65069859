"""mod_dir: the trailing-slash redirect and DirectoryIndex for requests that map to a directory.

`/dir` answers 301 to `/dir/` (DirectorySlash On); `/dir/` is served by the first
DirectoryIndex entry that exists, through an internal redirect, so its own <Files> and
handler apply. A directory with no index is refused with 403, as httpd does when
server-generated indexes are off.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from pyhttpd.directive import Args, CmdParms, Context, Directive, set_flag
from pyhttpd.hooks import Hooks
from pyhttpd.http_request import internal_redirect
from pyhttpd.log import log_rerror
from pyhttpd.mapping import construct_url, escape_path
from pyhttpd.module import DECLINED, DONE, LAST, Module
from pyhttpd.request import HTTPError, Request

DEFAULT_INDEX = ("index.html",)
DIRECTORY_TYPE = "httpd/unix-directory"  # httpd's DIR_MAGIC_TYPE, a handler name for directories


@dataclass
class DirConfig:
    """DirectoryIndex (an empty tuple when disabled) and DirectorySlash; None inherits."""

    indexes: tuple[str, ...] | None = None
    slash: bool | None = None


def _directory_index(cmd: CmdParms, cfg: DirConfig, args: list[str]) -> None:
    if len(args) == 1 and args[0].lower() == "disabled":
        cfg.indexes = ()
    else:
        cfg.indexes = (*(cfg.indexes or ()), *args)


class DirModule(Module):
    """httpd's mod_dir."""

    name = "dir_module"
    directives = (
        Directive("DirectoryIndex", Args.TAKE_ARGV, Context.OR_ALL, "files to look for when a directory is requested, or disabled", _directory_index, "disabled | local-url [local-url] ...", "index.html", scope="dir"),
        Directive("DirectorySlash", Args.FLAG, Context.OR_ALL, "redirect requests for a directory without a trailing slash to the URL with one", set_flag("slash"), "On|Off", "On", scope="dir"),
    )

    def create_dir_config(self, path: str | None) -> DirConfig:
        return DirConfig()

    def register_hooks(self, hooks: Hooks) -> None:
        hooks.register("fixups", fixups, LAST, module=self.name)
        hooks.register("handler", handler, LAST, module=self.name)


def _is_directory_request(r: Request) -> bool:
    st = r.finfo
    return (
        st is not None
        and not r.path_info
        and stat.S_ISDIR(st.st_mode)
        and (r.handler is None or r.handler == DIRECTORY_TYPE)
    )


def fixups(r: Request) -> int:
    """301 to add the slash, or an internal redirect to the first index that exists."""
    if not _is_directory_request(r):
        return DECLINED
    conf: DirConfig = r.per_dir_config["dir_module"]
    query = f"?{r.args}" if r.args else ""
    if not r.uri.endswith("/"):
        if conf.slash is False:
            return DECLINED
        r.err_headers_out.set("Location", construct_url(r, escape_path(r.uri) + "/" + query))
        return 301
    names = DEFAULT_INDEX if conf.indexes is None else conf.indexes
    assert r.filename is not None
    for name in names:
        if name.startswith("/"):
            internal_redirect(r, name + query)
            return DONE
        try:
            found = stat.S_ISREG(os.stat(os.path.join(r.filename, name)).st_mode)
        except OSError:
            found = False
        if found:
            internal_redirect(r, r.uri + name + query)
            return DONE
    return DECLINED


def handler(r: Request) -> int:
    """A directory no index served: 403, before the default handler would say 404."""
    if not _is_directory_request(r):
        return DECLINED
    conf: DirConfig = r.per_dir_config["dir_module"]
    names = DEFAULT_INDEX if conf.indexes is None else conf.indexes
    log_rerror(
        r, "error", "dir",
        f"Cannot serve directory {r.filename}: No matching DirectoryIndex ({','.join(names) or 'none'}) "
        "found, and server-generated directory index forbidden by Options directive",
    )
    raise HTTPError(403)


dir_module = DirModule()
