"""Running a request through the hooks (httpd's http_request.c) and error responses.

Order: post_read_request, <Location> walk, translate_name, map_to_storage (<Directory>
and <Files> walk; <Location> applied again on top), header_parser, access_checker,
type_checker, fixups, handler, then log_transaction. A hook that returns an HTTP status
ends the request with that status; ErrorDocument may turn it into a text, a redirect or
an internal redirect to a local URL.
"""

from __future__ import annotations

import html
import stat
import traceback
from http import HTTPStatus
from typing import TYPE_CHECKING

from pyhttpd.log import log_rerror
from pyhttpd.module import DECLINED, DONE, OK
from pyhttpd.request import HTTPError, Request, RequestEntityTooLarge

if TYPE_CHECKING:
    from pyhttpd.core import CoreDirConfig

MAX_INTERNAL_REDIRECTS = 10

# The explanations httpd's error pages give (ap_send_error_response).
ERROR_TEXT = {
    400: "Your browser sent a request that this server could not understand.",
    401: "This server could not verify that you are authorized to access the document requested.",
    403: "You don't have permission to access this resource.",
    404: "The requested URL was not found on this server.",
    405: "The requested method is not allowed for this URL.",
    408: "Server timeout waiting for the HTTP request from the client.",
    411: "A request of the requested method requires a valid Content-length.",
    413: "The requested resource does not allow request data with this method, or the amount of data provided in the request exceeds the capacity limit.",
    414: "The requested URL's length exceeds the capacity limit for this server.",
    416: "None of the range-specifier values in the Range request-header field overlap the current extent of the selected resource.",
    417: "The expectation given in the Expect request-header field could not be met by this server.",
    431: "Your browser sent a request with header fields that are too large.",
    500: "The server encountered an internal error or misconfiguration and was unable to complete your request.",
    501: "The requested method is not supported by this server.",
    502: "The proxy server received an invalid response from an upstream server.",
    503: "The server is temporarily unable to service your request due to maintenance downtime or capacity problems. Please try again later.",
    504: "The gateway did not receive a timely response from the upstream server or application.",
}


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Reason"


def process_request(r: Request) -> None:
    """Serve one request completely, then run log_transaction."""
    try:
        status = _run_hooks(r)
        if status != OK and status != DONE:
            send_error_response(r, status)
    except HTTPError as e:
        if e.message:
            log_rerror(r, "info", "core", e.message)
        send_error_response(r, e.status)
    except RequestEntityTooLarge as e:
        log_rerror(r, "error", "core", str(e))
        r.keepalive = False
        send_error_response(r, 413)
    except (ConnectionError, TimeoutError):
        r.connection.aborted = True
        r.keepalive = False
    except Exception:
        log_rerror(r, "error", "core", f"handler failed for {r.uri}:\n{traceback.format_exc().rstrip()}")
        r.keepalive = False
        if r.headers_sent:
            r.connection.aborted = True  # the client sees a truncated response, never a wrong one
        else:
            send_error_response(r, 500)
    finally:
        r.config.hooks.run_all("log_transaction", _final(r))


def _final(r: Request) -> Request:
    """The request whose status is logged: the last of an internal redirect chain."""
    last = r.notes.get("internal_redirect")
    while last is not None:
        r, last = last, last.notes.get("internal_redirect")
    return r


def _run_hooks(r: Request) -> int:
    # The hooks' loops are written out: this runs for every request, and a run_all or
    # run_first call per hook would double the calls it makes.
    hooks = r.config.hooks.table()
    for fn in hooks["post_read_request"]:
        rv = fn(r)
        if rv != OK and rv != DECLINED:
            return rv
    walker = r.server.walker
    assert walker is not None
    locations = walker.location_sections(r.uri)
    r.per_dir_config = walker.merge(locations)
    rv = DECLINED
    for fn in hooks["translate_name"]:
        rv = fn(r)
        if rv != DECLINED:
            break
    if rv == DECLINED:
        return 500
    if rv != OK and rv != DONE:
        return rv
    for fn in hooks["map_to_storage"]:
        rv = fn(r)
        if rv != DECLINED:
            if rv != OK and rv != DONE:
                return rv
            break
    sections = []
    if r.filename:
        is_dir = stat.S_ISDIR(r.finfo.st_mode) if r.finfo is not None else False
        sections = walker.directory_sections(r.filename, is_dir)
    if sections or locations:
        r.per_dir_config = walker.merge(sections + locations)
    core: CoreDirConfig = r.per_dir_config["core"]
    r.body_limit = core.limit_request_body or 0
    if r.body_limit and r.remaining is not None and r.remaining > r.body_limit:
        r.keepalive = False
        return 413
    for fn in hooks["header_parser"] + hooks["access_checker"]:
        rv = fn(r)
        if rv != OK and rv != DECLINED:
            return rv
    for fn in hooks["type_checker"]:
        rv = fn(r)
        if rv != DECLINED:
            if rv != OK:
                return rv
            break
    if core.handler:  # "" for SetHandler none
        r.handler = core.handler
    if core.force_type:  # "" for ForceType none
        r.content_type = core.force_type
    for fn in hooks["fixups"]:
        rv = fn(r)
        if rv != OK and rv != DECLINED:
            return rv
    for fn in hooks["handler"]:
        rv = fn(r)
        if rv != DECLINED:
            return rv
    return 404 if r.handler is None else 500


def send_error_response(r: Request, status: int, recursion: int = 0) -> None:
    """Answer with an error status: ErrorDocument if configured, else httpd's HTML page."""
    if r.headers_sent:
        r.connection.aborted = True
        return
    r.status = status
    if status >= 400 and r.remaining:
        r.keepalive = False  # the unread body would be taken for the next request
    core = r.per_dir_config.get("core") if r.per_dir_config else None
    document = core.error_documents.get(status) if core and core.error_documents else None
    r.headers_out = r.err_headers_out
    r.err_headers_out = type(r.headers_out)()
    if document is not None and recursion == 0:
        if "://" in document and not document.startswith('"'):
            r.headers_out.set("Location", document)
            _send_body(r, 302, _error_page(r, 302), "text/html; charset=iso-8859-1")
            return
        if document.startswith("/"):
            internal_redirect(r, document, status)
            return
        _send_body(r, status, document.removeprefix('"').encode(), "text/html; charset=iso-8859-1")
        return
    _send_body(r, status, _error_page(r, status), "text/html; charset=iso-8859-1")


def _send_body(r: Request, status: int, body: bytes, content_type: str) -> None:
    r.status = status
    r.content_type = content_type
    r.headers_out.set("Content-Length", str(len(body)))
    r.write(body)


def _error_page(r: Request, status: int) -> bytes:
    reason = reason_phrase(status)
    text = ERROR_TEXT.get(status, "")
    if status in (301, 302, 303, 307, 308):
        location = html.escape(r.headers_out.get("Location") or "", quote=True)
        text = f'The document has moved <a href="{location}">here</a>.'
    body = (
        '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
        f"<title>{status} {reason}</title>\n</head><body>\n<h1>{reason}</h1>\n<p>{text}</p>\n"
        f"{signature(r)}</body></html>\n"
    )
    return body.encode("latin-1", "replace")


def signature(r: Request) -> str:
    """The ServerSignature footer, or ''."""
    core = r.per_dir_config.get("core") if r.per_dir_config else None
    mode = core.server_signature if core else None
    if not mode or mode == "Off":
        return ""
    from pyhttpd.server_tokens import server_banner

    name = html.escape(r.server.server_hostname or r.hostname or r.connection.local_ip)
    port = r.connection.local_port
    admin = r.server.core.server_admin
    if mode == "EMail" and admin:
        return f'<hr>\n<address>{server_banner(r.config)} Server at <a href="mailto:{html.escape(admin)}">{name}</a> Port {port}</address>\n'
    return f"<hr>\n<address>{server_banner(r.config)} Server at {name} Port {port}</address>\n"


def internal_redirect(r: Request, uri: str, status: int | None = None) -> None:
    """Serve `uri` in place of `r` on the same connection (ap_internal_redirect)."""
    depth = 0
    prev = r
    while prev.prev is not None:
        prev, depth = prev.prev, depth + 1
    if depth >= MAX_INTERNAL_REDIRECTS:
        log_rerror(r, "error", "core", f"Request exceeded the limit of {MAX_INTERNAL_REDIRECTS} internal redirects")
        send_error_response(r, 500, recursion=1)
        return
    new = Request(r.config, r.connection, r.transport)
    new.prev = r
    new.server = r.server
    new.method = "GET" if r.method not in ("GET", "HEAD") else r.method
    new.header_only = r.header_only
    new.protocol, new.proto_num, new.hostname = r.protocol, r.proto_num, r.hostname
    new.headers_in = r.headers_in
    new.the_request = r.the_request
    path, _, query = uri.partition("?")
    new.unparsed_uri = uri
    new.uri = path
    new.args = query or r.args
    new.remaining = 0
    new.keepalive = r.keepalive
    new.subprocess_env = {f"REDIRECT_{k}": v for k, v in r.subprocess_env.items()}
    if status is not None:
        new.subprocess_env["REDIRECT_STATUS"] = str(status)
        new.status = status  # an ErrorDocument page keeps the error's status
    new.subprocess_env["REDIRECT_URL"] = r.uri
    r.notes["internal_redirect"] = new
    try:
        rv = _run_hooks(new)
        if rv != OK and rv != DONE:
            send_error_response(new, rv, recursion=1)
    except HTTPError as e:
        send_error_response(new, e.status, recursion=1)
    r.status = new.status
    r.bytes_sent = new.bytes_sent
    r.headers_sent = new.headers_sent
    r.keepalive = new.keepalive
