"""mod_wsgi: hosts WSGI applications (PEP 3333) in the server's children.

    LoadModule wsgi_module modules/mod_wsgi
    WSGIScriptAlias /app /srv/app/app.py
    WSGIScriptReloading On
    WSGICallableObject application

`WSGIScriptAlias URL-path file` serves every request under URL-path (matched at a '/'
boundary) with the `application` callable of the script; the prefix becomes SCRIPT_NAME
and the rest PATH_INFO. `SetHandler wsgi-script` serves the file a request maps to
(r.filename) the same way. Each child loads a script on its first request and, with
WSGIScriptReloading On (the default), loads it again when its modification time changes.

Applications run in the child's greenlets. The MPM monkey-patches the standard library
with gevent in each child before anything else runs, so an application that blocks
(time.sleep, sockets, database drivers written in Python) only suspends its own request;
other requests of the same child go on. C extensions that block outside Python's socket
module still block the whole child: give such work a thread pool or another process.

An application that raises gets a 500 response and its traceback in the error log, and
the child goes on serving. Other modules can add environ entries by putting them in the
dict ``r.notes["wsgi_environ"]`` before the handler runs; ``environ["pyhttpd.request"]``
is the request itself.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modules.mod_wsgi.environ import build_environ, server_entries
from modules.mod_wsgi.input import ClientGone
from modules.mod_wsgi.response import WsgiResponse
from modules.mod_wsgi.script import ScriptError, Scripts
from pyhttpd.directive import Args, CmdParms, Context, Directive, DirectiveError, set_flag
from pyhttpd.log import log_rerror
from pyhttpd.module import DECLINED, DONE, FIRST, OK, Module
from pyhttpd.request import HTTPError, RequestEntityTooLarge

if TYPE_CHECKING:
    from pyhttpd.hooks import Hooks
    from pyhttpd.request import Request
    from pyhttpd.server import Server

HANDLER = "wsgi-script"
DEFAULT_CALLABLE = "application"


@dataclass(frozen=True)
class ScriptAlias:
    """One WSGIScriptAlias: URL prefix (without a trailing '/'), script file, callable name."""

    prefix: str
    path: str
    callable_object: str | None = None

    def match(self, uri: str) -> str | None:
        """PATH_INFO for `uri` if the alias covers it, else None."""
        if not uri.startswith(self.prefix):
            return None
        rest = uri[len(self.prefix) :]
        if rest and not rest.startswith("/"):
            return None
        return rest


@dataclass
class WsgiServerConfig:
    """Per-server config: the WSGIScriptAlias lines, in the order they are tried."""

    aliases: tuple[ScriptAlias, ...] = ()
    # The environ entries every request of the server shares, made on its first request.
    environ: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass
class WsgiDirConfig:
    """Per-directory config; None is "not set here"."""

    script_reloading: bool | None = None
    callable_object: str | None = None
    pass_authorization: bool | None = None


def _script_alias(cmd: CmdParms, cfg: WsgiServerConfig, args: list[str]) -> None:
    if len(args) < 2:
        raise DirectiveError("WSGIScriptAlias takes a URL path and a script file")
    url, file, *options = args
    if not url.startswith("/"):
        raise DirectiveError(f"URL path '{url}' must start with '/'")
    callable_object = None
    for option in options:
        key, eq, value = option.partition("=")
        if key == "callable-object" and eq and value:
            callable_object = value
        else:
            raise DirectiveError(f"unsupported option '{option}' (pyhttpd knows callable-object=name)")
    path = cmd.resolve(file)
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise DirectiveError(f"cannot read WSGI script '{path}': {e.strerror}") from None
    cfg.aliases = (*cfg.aliases, ScriptAlias(url.rstrip("/"), path, callable_object))


def _callable_object(cmd: CmdParms, cfg: WsgiDirConfig, name: str) -> None:
    if not name.isidentifier():
        raise DirectiveError(f"'{name}' is not a Python identifier")
    cfg.callable_object = name


ALL = Context.OR_ALL


class WsgiModule(Module):
    """Serves requests with WSGI applications loaded from script files."""

    name = "wsgi_module"
    directives = (
        Directive("WSGIScriptAlias", Args.TAKE_ARGV, Context.RSRC_CONF, "serve a URL path with the WSGI application of a script file", _script_alias, "URL-path file-path [callable-object=name]"),
        Directive("WSGIScriptReloading", Args.FLAG, ALL, "load a script again when its modification time changes", set_flag("script_reloading"), "On|Off", "On", scope="dir"),
        Directive("WSGICallableObject", Args.TAKE1, ALL, "name of the WSGI application callable in the script", _callable_object, "name", DEFAULT_CALLABLE, scope="dir"),
        Directive("WSGIPassAuthorization", Args.FLAG, ALL, "give the application the Authorization header (HTTP_AUTHORIZATION)", set_flag("pass_authorization"), "On|Off", "Off", scope="dir"),
    )

    def __init__(self) -> None:
        self.scripts = Scripts()

    def create_server_config(self, server: Server) -> WsgiServerConfig:
        return WsgiServerConfig()

    def merge_server_config(self, base: WsgiServerConfig, add: WsgiServerConfig) -> WsgiServerConfig:
        return WsgiServerConfig(add.aliases + base.aliases)

    def create_dir_config(self, path: str | None) -> WsgiDirConfig:
        return WsgiDirConfig()

    def register_hooks(self, hooks: Hooks) -> None:
        hooks.register("translate_name", self.translate_name, FIRST, module=self.name)
        hooks.register("map_to_storage", self.map_to_storage, FIRST, module=self.name)
        hooks.register("handler", self.handler, module=self.name)

    def translate_name(self, r: Request) -> int:
        """Map a URI under a WSGIScriptAlias to its script."""
        cfg: WsgiServerConfig | None = r.server_config(self.name)
        if cfg is None:
            return DECLINED
        for alias in cfg.aliases:
            path_info = alias.match(r.uri)
            if path_info is not None:
                r.filename = alias.path
                r.path_info = path_info
                r.handler = HANDLER
                r.notes["wsgi_alias"] = alias
                return OK
        return DECLINED

    def map_to_storage(self, r: Request) -> int:
        """An aliased script is the whole answer: no file lookup under DocumentRoot."""
        return OK if "wsgi_alias" in r.notes else DECLINED

    def handler(self, r: Request) -> int:
        """Run the application for a wsgi-script request."""
        if r.handler != HANDLER or not r.filename:
            return DECLINED
        alias: ScriptAlias | None = r.notes.get("wsgi_alias")
        dcfg: WsgiDirConfig = r.dir_config(self.name) or WsgiDirConfig()
        if alias is not None:
            script_name = alias.prefix
        else:
            script_name = r.uri[: len(r.uri) - len(r.path_info)] if r.path_info else r.uri
        callable_object = (alias and alias.callable_object) or dcfg.callable_object or DEFAULT_CALLABLE
        reloading = dcfg.script_reloading is not False
        try:
            app = self.scripts.application(r.filename, callable_object, reloading)
        except FileNotFoundError:
            log_rerror(r, "error", "wsgi", f"Target WSGI script not found or unable to stat: {r.filename}")
            return 404
        except ScriptError as e:
            log_rerror(r, "error", "wsgi", str(e))
            return 500
        cfg: WsgiServerConfig = r.server.module_config[self.name]
        if cfg.environ is None:
            cfg.environ = server_entries(r.server)
        environ = build_environ(
            r, script_name, r.path_info, r.filename, pass_authorization=bool(dcfg.pass_authorization), constant=cfg.environ
        )
        r.content_type = None  # the application's Content-Type, not the script file's
        response = WsgiResponse(r)
        try:
            response.run(app, environ)
        except (ClientGone, HTTPError, RequestEntityTooLarge):
            raise
        except Exception:
            log_rerror(r, "error", "wsgi", f"Exception occurred processing WSGI script '{r.filename}'.\n{traceback.format_exc().rstrip()}")
            if r.headers_sent:
                r.keepalive = False
                r.connection.aborted = True  # a truncated response, never a wrong one
                return DONE
            r.status_line = None
            r.content_type = None
            r.headers_out.clear()
            return 500
        return OK


wsgi_module = WsgiModule()
