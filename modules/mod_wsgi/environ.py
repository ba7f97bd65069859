"""The WSGI environ of a request (PEP 3333), with the CGI variables httpd would set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modules.mod_wsgi.errors import ErrorStream
from modules.mod_wsgi.file_wrapper import FileWrapper
from modules.mod_wsgi.input import WsgiInput
from modules.mod_wsgi.native import to_wsgi
from pyhttpd.server_tokens import server_banner

if TYPE_CHECKING:
    from pyhttpd.request import Request
    from pyhttpd.server import Server

# A header name outside [A-Za-z0-9-] could pose as another after '-' becomes '_'
# (httpd drops such headers from the CGI environment since 2.4).
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
# "Proxy: evil" would become HTTP_PROXY, which HTTP clients read as their proxy (httpoxy).
_DROPPED = "PROXY"
# Header name -> environ key ("" when the header is not passed), for the names seen so far;
# bounded, since clients choose the names.
_KEYS: dict[str, str] = {}
_KEYS_MAX = 2048


def build_environ(
    r: Request,
    script_name: str,
    path_info: str,
    script_filename: str,
    *,
    pass_authorization: bool = False,
    constant: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The environ for calling an application mounted at `script_name` for request `r`.

    r.subprocess_env (SetEnv, the AJP request attributes and SSL variables...) comes first,
    the request's own variables override it. Authorization reaches the application only
    with `pass_authorization` (WSGIPassAuthorization On), as in mod_wsgi. Entries other
    modules put in ``r.notes["wsgi_environ"]`` (a dict) are added last. `constant` is
    server_entries(r.server), for a caller that keeps it.
    """
    c = r.connection
    if constant is None:
        constant = server_entries(r.server)
    if r.subprocess_env:
        env = {name: value if value.isascii() else to_wsgi(value) for name, value in r.subprocess_env.items()}
        env.update(constant)
    else:
        env = constant.copy()
    seen = set()
    for name, value in r.headers_in:
        key = _KEYS.get(name)
        if key is None:
            key = _key(name)
        if not key or (key == "HTTP_AUTHORIZATION" and not pass_authorization):
            continue
        if not value.isascii():
            value = to_wsgi(value)
        if key in seen:
            env[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            env[key] = value
            seen.add(key)
    https = r.is_https or r.scheme == "https"
    port = r.notes.get("ajp_server_port") or _host_port(r.headers_in.get("Host")) or c.local_port
    args = r.args or ""
    uri = r.unparsed_uri
    env["REQUEST_METHOD"] = r.method
    env["SCRIPT_NAME"] = script_name if script_name.isascii() else to_wsgi(script_name)
    env["PATH_INFO"] = path_info if path_info.isascii() else to_wsgi(path_info)
    env["QUERY_STRING"] = args if args.isascii() else to_wsgi(args)
    env["REQUEST_URI"] = uri if uri.isascii() else to_wsgi(uri)
    env["SERVER_NAME"] = r.hostname or r.server.server_hostname or c.local_ip
    env["SERVER_PORT"] = str(port)
    env["SERVER_PROTOCOL"] = r.protocol
    env["REMOTE_ADDR"] = c.remote_ip
    env["REMOTE_PORT"] = str(c.remote_port)
    env["SERVER_ADDR"] = c.local_ip
    env["SCRIPT_FILENAME"] = script_filename if script_filename.isascii() else to_wsgi(script_filename)
    env["REQUEST_SCHEME"] = env["wsgi.url_scheme"] = "https" if https else "http"
    env["wsgi.input"] = WsgiInput(r.read)
    env["wsgi.errors"] = ErrorStream(r)
    env["pyhttpd.request"] = r
    if https:
        env["HTTPS"] = "on"
    if r.user is not None:
        env["REMOTE_USER"] = to_wsgi(r.user)
    if r.ap_auth_type is not None:
        env["AUTH_TYPE"] = r.ap_auth_type
    extra = r.notes.get("wsgi_environ")
    if extra:
        env.update(extra)
    return env


def server_entries(server: Server) -> dict[str, Any]:
    """The environ entries that are the same for every request of a server."""
    core = server.core
    entries: dict[str, Any] = {
        "SERVER_SOFTWARE": server_banner(server.config),
        "GATEWAY_INTERFACE": "CGI/1.1",
        "DOCUMENT_ROOT": to_wsgi(core.document_root or server.config.resolve("htdocs")),
        "wsgi.version": (1, 0),
        "wsgi.input_terminated": True,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    if core.server_admin:
        entries["SERVER_ADMIN"] = core.server_admin
    return entries


def _key(name: str) -> str:
    """The environ key of a request header ("" when it is not passed), remembered."""
    key = ""
    if _NAME_CHARS.issuperset(name):
        key = name.upper().replace("-", "_")
        if key == _DROPPED:
            key = ""
        elif key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
    if len(_KEYS) < _KEYS_MAX:
        _KEYS[name] = key
    return key


def _host_port(host: str | None) -> int | None:
    """The port of a Host header value, if it names one."""
    if not host or ":" not in host:
        return None
    _, _, port = host.rpartition(":")
    if port.isdigit() and not port.startswith("0"):
        return int(port)
    return None
