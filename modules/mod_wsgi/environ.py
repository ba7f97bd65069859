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

# A header name outside [A-Za-z0-9-] could pose as another after '-' becomes '_'
# (httpd drops such headers from the CGI environment since 2.4).
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
# "Proxy: evil" would become HTTP_PROXY, which HTTP clients read as their proxy (httpoxy).
_DROPPED = frozenset(("PROXY",))


def build_environ(
    r: Request,
    script_name: str,
    path_info: str,
    script_filename: str,
    *,
    pass_authorization: bool = False,
) -> dict[str, Any]:
    """The environ for calling an application mounted at `script_name` for request `r`.

    r.subprocess_env (SetEnv, the AJP request attributes and SSL variables...) comes first,
    the request's own variables override it. Authorization reaches the application only
    with `pass_authorization` (WSGIPassAuthorization On), as in mod_wsgi. Entries other
    modules put in ``r.notes["wsgi_environ"]`` (a dict) are added last.
    """
    c = r.connection
    env: dict[str, Any] = {name: to_wsgi(value) for name, value in r.subprocess_env.items()}
    headers: dict[str, str] = {}
    for name, value in r.headers_in:
        if not _NAME_CHARS.issuperset(name):
            continue
        key = name.upper().replace("-", "_")
        if key in _DROPPED or (key == "AUTHORIZATION" and not pass_authorization):
            continue
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = to_wsgi(value)
        if key in headers:
            headers[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            headers[key] = value
    env.update(headers)
    https = r.is_https or r.scheme == "https"
    host = r.headers_in.get("Host")
    port = r.notes.get("ajp_server_port") or _host_port(host) or c.local_port
    core = r.server.core
    env.update(
        {
            "REQUEST_METHOD": r.method,
            "SCRIPT_NAME": to_wsgi(script_name),
            "PATH_INFO": to_wsgi(path_info),
            "QUERY_STRING": to_wsgi(r.args or ""),
            "REQUEST_URI": to_wsgi(r.unparsed_uri),
            "SERVER_NAME": r.hostname or r.server.server_hostname or c.local_ip,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": r.protocol,
            "SERVER_SOFTWARE": server_banner(r.config),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REMOTE_ADDR": c.remote_ip,
            "REMOTE_PORT": str(c.remote_port),
            "SERVER_ADDR": c.local_ip,
            "REQUEST_SCHEME": "https" if https else "http",
            "SCRIPT_FILENAME": to_wsgi(script_filename),
            "DOCUMENT_ROOT": to_wsgi(core.document_root or r.config.resolve("htdocs")),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if https else "http",
            "wsgi.input": WsgiInput(r.read),
            "wsgi.input_terminated": True,
            "wsgi.errors": ErrorStream(r),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "pyhttpd.request": r,
        }
    )
    if https:
        env["HTTPS"] = "on"
    if r.user is not None:
        env["REMOTE_USER"] = to_wsgi(r.user)
    if r.ap_auth_type is not None:
        env["AUTH_TYPE"] = r.ap_auth_type
    if core.server_admin:
        env["SERVER_ADMIN"] = core.server_admin
    env.update(r.notes.get("wsgi_environ") or {})
    return env


def _host_port(host: str | None) -> int | None:
    """The port of a Host header value, if it names one."""
    if not host:
        return None
    _, colon, port = host.rpartition(":")
    if colon and port.isdigit() and not port.startswith("0") and "]" not in port:
        return int(port)
    return None
