"""One request as mod_jk's workers see it (mod_jk's ``jk_ws_service_t``).

Built once per request from the pyhttpd Request, the server's Jk settings and the mapping
rule that matched; an lb worker hands the same object to each member it tries. It holds
the Forward Request every attempt sends, the request body state (the first body packet is
kept so a retry can replay it; once the container asked for more, the request can no
longer be retried) and the callbacks that put the container's response on the client
connection.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pyhttpd.headers import Headers
from pyhttpd.request import HTTPError, Request, RequestEntityTooLarge

from .ajp13 import ForwardRequest, SendHeaders, encode_forward_request
from .uri_map import RuleExtensions

if TYPE_CHECKING:
    from .module import JkServerConfig

# Characters mod_jk's ForwardURIProxy leaves as they are (proxy-style path escaping).
_PROXY_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789$-_.+!*'(),;:@&=/~")
# ap_escape_uri (ForwardURIEscaped) escapes ';' too.
_ESCAPE_SAFE = _PROXY_SAFE - {ord(";")}
_SAFE_BYTES = {safe: bytes(sorted(safe)) for safe in (_PROXY_SAFE, _ESCAPE_SAFE)}
# mod_jk reads chunked bodies this much short of a full packet, so a chunk size line fits.
CHUNK_BUFFER_PAD = 12
# The first body packet is kept for a retry on another backend, which may have the
# smallest max_packet_size; so it is never larger than that backend could take.
FIRST_BODY_CHUNK = 8192 - 6
_NO_EXTENSIONS = RuleExtensions()  # a request whose mapping rule has no extensions
# Lengths of the request header names build() reads (Host, Content-Length,
# Transfer-Encoding): other names are not even lowercased.
_READ_NAME_LENGTHS = frozenset((4, 14, 17))


class ClientReadError(Exception):
    """Reading the request body from the client failed; ``status`` is the client's answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ClientWriteError(Exception):
    """Writing the response to the client failed."""


def escape_path(path: str, safe: frozenset[int] = _PROXY_SAFE) -> str:
    """Percent-encode a decoded path's bytes outside ``safe`` (jk_canonenc / ap_escape_uri)."""
    raw = path.encode("utf-8", "surrogateescape")
    safe_bytes = _SAFE_BYTES.get(safe)
    if safe_bytes is None:
        safe_bytes = bytes(sorted(safe))
    if not raw.translate(None, safe_bytes):
        return path  # every byte is safe
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in raw)


class ServiceRequest:
    """The request a worker serves, and how its response reaches the client.

    What most requests leave as it is stays a class attribute: one is made per request.
    """

    content_length = 0
    is_chunked = False
    reply_timeout: int | None = None  # ms; None: the worker's
    route: str | None = None  # JK_ROUTE, or the lb member's route
    activation = "ACT"  # JK_LB_ACTIVATION sent to the container
    session_cookie: str | None = None  # an lb's set_session_cookie, added to the response
    flush_packets = False
    flush_header = False
    disable_reuse = False
    sticky_ignore = False
    stateless = False
    # request body state
    content_read = 0
    no_more_chunks = False
    first_body: bytes | None = None
    body_requested = False  # the container asked for body beyond the first packet
    # response state
    response_started = False
    response_blocked = False  # use_server_errors: httpd answers with its own page
    response_status = 0
    body_bytes = 0

    def __init__(
        self,
        r: Request,
        forward: ForwardRequest,
        worker_name: str,
        extensions: RuleExtensions | None = None,
        *,
        base_headers_out: list[tuple[str, str]] | None = None,
        pre_attributes: list[tuple[str, str]] | None = None,
        env_attributes: list[tuple[str, str]] | None = None,
    ) -> None:
        self.r = r
        self.forward = forward
        self.worker_name = worker_name
        self.extensions = extensions or _NO_EXTENSIONS
        self.started = time.perf_counter()
        self._base_headers_out = base_headers_out or []
        self._pre_attributes = pre_attributes or []
        self._env_attributes = env_attributes or []

    @classmethod
    def build(
        cls, r: Request, conf: JkServerConfig, worker_name: str, extensions: RuleExtensions | None,
        original_uri: str,
    ) -> ServiceRequest:
        """The service request for ``r`` as mod_jk's init_ws_service builds it.

        ``original_uri`` is the decoded URI before mod_jk normalised it for mapping; it is
        what ForwardURIProxy/Escaped/Compat forward.
        """
        env = r.subprocess_env
        # With no environment variables set, none of the indicators can say anything.
        get = env.get if env else _none
        options = conf.effective_options
        indicator = conf.indicator_names
        c = r.connection
        ext = extensions or _NO_EXTENSIONS

        if "ForwardLocalAddress" in options:
            remote_addr, remote_port = c.local_ip, "0"
        else:
            remote_addr, remote_port = c.remote_ip, str(c.remote_port)
        if env:
            remote_addr = get(indicator["remote_addr"]) or remote_addr
            remote_port = get(indicator["remote_port"]) or remote_port
            remote_host = get(indicator["remote_host"]) or remote_addr
        else:
            remote_host = remote_addr

        if "ForwardURICompatUnparsed" in options:
            req_uri = r.unparsed_uri.split("?", 1)[0]
        elif "ForwardURICompat" in options:
            req_uri = original_uri
        elif "ForwardURIEscaped" in options:
            req_uri = escape_path(original_uri, _ESCAPE_SAFE)
        else:
            req_uri = escape_path(original_uri)

        # One pass over the request headers: the forwarded list and the three read here.
        headers: list[tuple[str, str]] = []
        host_header = transfer_encoding = length = None
        for name, value in r.headers_in:
            if len(name) in _READ_NAME_LENGTHS:
                lname = name.lower()
                if lname == "host":
                    if host_header is None:
                        host_header = value
                elif lname == "content-length":
                    if length is None:
                        length = value
                elif lname == "transfer-encoding" and transfer_encoding is None:
                    transfer_encoding = value
            headers.append((name, value))

        server_name = get(indicator["local_name"]) or r.hostname or r.server.server_hostname or c.local_ip
        port_text = get(indicator["local_port"])
        if port_text is None and host_header and not host_header.endswith("]") and ":" in host_header:
            port_text = host_header.rsplit(":", 1)[1]
        # As httpd's ap_get_server_port: the Host header's port, ServerName's, the default.
        default_port = r.server.port or (443 if r.is_https else 80)
        try:
            server_port = int(port_text) if port_text else default_port
        except ValueError:
            server_port = default_port

        content_length = 0
        is_chunked = transfer_encoding is not None and "chunked" in transfer_encoding.lower()
        if not is_chunked and length and length.strip().isdigit():
            content_length = int(length)
        if content_length > 0 and get(indicator["ignore_cl"]) is not None:
            content_length, is_chunked = 0, True

        if is_chunked:
            if length is not None:
                # The body length is whatever the chunks add up to.
                headers = [header for header in headers if header[0].lower() != "content-length"]
        elif length is None:
            # To AJP a missing Content-Length means a body of unknown, non-zero length.
            headers.append(("content-length", "0"))

        is_ssl = r.is_https
        ssl_cert = ssl_cipher = ssl_session = ssl_protocol = None
        ssl_key_size = None
        if conf.extract_ssl is not False and (env or is_ssl):
            https = get(indicator["https"])
            if https is not None:
                is_ssl = https.lower() == "on"
            if is_ssl:
                ssl_cert = get(indicator["certs"])
                if ssl_cert and "ForwardSSLCertChain" in options:
                    prefix = indicator["certchain_prefix"]
                    chain = [v for k, v in env.items() if k.startswith(prefix)]
                    ssl_cert = "\0".join([ssl_cert, *chain])
                ssl_cipher = get(indicator["cipher"])
                ssl_session = get(indicator["session"])
                ssl_protocol = get(indicator["ssl_protocol"])
                if "ForwardKeySize" in options and (get(indicator["key_size"]) or "").isdigit():
                    ssl_key_size = int(env[indicator["key_size"]])

        pre = [("AJP_SSL_PROTOCOL", ssl_protocol)] if ssl_protocol else []
        pre.append(("AJP_REMOTE_PORT", remote_port))
        pre.append(("AJP_LOCAL_ADDR", get(indicator["local_addr"]) or c.local_ip))
        env_attributes: list[tuple[str, str]] = []
        if conf.env_vars:
            for name, default in conf.env_vars.items():
                value = env.get(name, default)
                if value is not None:
                    env_attributes.append((name, value))

        forward = ForwardRequest(
            r.method, r.protocol, req_uri, remote_addr, remote_host, server_name, server_port, is_ssl,
            headers,
            remote_user=get(indicator["remote_user"]) or r.user or None,
            auth_type=get(indicator["auth_type"]) or r.ap_auth_type or None,
            query_string=r.args,
            ssl_cert=ssl_cert,
            ssl_cipher=ssl_cipher,
            ssl_session=ssl_session,
            ssl_key_size=ssl_key_size,
        )
        s = cls(r, forward, worker_name, ext, base_headers_out=r.headers_out.items(),
                pre_attributes=pre, env_attributes=env_attributes)
        if content_length:
            s.content_length = content_length
        if is_chunked:
            s.is_chunked = True
        if ext.reply_timeout is not None:
            s.reply_timeout = ext.reply_timeout
        if "FlushPackets" in options:
            s.flush_packets = True
        if "FlushHeader" in options:
            s.flush_header = True
        if "DisableReuse" in options:
            s.disable_reuse = True
        if env:
            s.route = env.get("JK_ROUTE") or None
            s.sticky_ignore = _env_flag(env.get("JK_STICKY_IGNORE"), ext.sticky_ignore)
            s.stateless = _env_flag(env.get("JK_STATELESS"), ext.stateless)
            reply_timeout = env.get("JK_REPLY_TIMEOUT")
            if reply_timeout is not None and reply_timeout.strip().isdigit():
                s.reply_timeout = int(reply_timeout)
        else:
            if ext.sticky_ignore:
                s.sticky_ignore = True
            if ext.stateless:
                s.stateless = True
        return s

    # -- request -------------------------------------------------------------------------

    def forward_packet(self, secret: str | None, max_packet_size: int) -> bytes:
        """The Forward Request packet for one worker (its secret, the route, the activation).

        Raises ajp13.AjpError when it does not fit in ``max_packet_size``.
        """
        forward = self.forward
        forward.secret = secret
        forward.route = self.route
        forward.req_attributes = [
            *self._pre_attributes, ("JK_LB_ACTIVATION", self.activation), *self._env_attributes
        ]
        return encode_forward_request(forward, max_packet_size)

    @property
    def has_body_left(self) -> bool:
        """Whether body bytes may still be read from the client."""
        if self.is_chunked:
            return not self.no_more_chunks
        return self.content_read < self.content_length

    def read_body(self, size: int) -> bytes:
        """Up to ``size`` request body bytes (fewer only at the end of the body).

        Raises ClientReadError, or RequestEntityTooLarge beyond LimitRequestBody.
        """
        if self.is_chunked:
            if self.no_more_chunks:
                return b""
            want = size - CHUNK_BUFFER_PAD if size > CHUNK_BUFFER_PAD else size
        else:
            want = size = min(size, self.content_length - self.content_read)
        chunks: list[bytes] = []
        got = 0
        while got < want:
            try:
                data = self.r.read(size - got)
            except RequestEntityTooLarge:
                raise
            except HTTPError as e:  # a malformed chunked body, a body read timeout
                raise ClientReadError(e.message or str(e.status), e.status) from None
            except (OSError, ValueError) as e:
                raise ClientReadError(str(e) or type(e).__name__) from None
            if not data:
                if self.is_chunked:
                    self.no_more_chunks = True
                    break
                raise ClientReadError(f"the client sent {self.content_read + got} of "
                                      f"{self.content_length} body bytes")
            chunks.append(data)
            got += len(data)
        self.content_read += got
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def read_first_body(self) -> bytes:
        """The first body packet's data, read once and kept for retries."""
        if self.first_body is None:
            self.first_body = self.read_body(FIRST_BODY_CHUNK)
        return self.first_body

    # -- response ------------------------------------------------------------------------

    def start_response(self, msg: SendHeaders) -> None:
        """Take the container's status and headers (not yet sent to the client)."""
        r = self.r
        self.response_started = True
        self.response_status = msg.status
        r.status = msg.status
        reason = msg.reason.strip()
        # Tomcat sends the number itself when it has no reason phrase: use httpd's then.
        r.status_line = f"{msg.status} {reason}" if reason and reason != str(msg.status) else None
        items = list(self._base_headers_out)
        for name, value in msg.headers:
            if name.lower() == "content-type":
                r.content_type = value
            else:
                items.append((name, value))
        if self.session_cookie:
            items.append(("Set-Cookie", self.session_cookie))
        r.headers_out = headers = Headers(items)
        threshold = self.extensions.use_server_errors
        if threshold and msg.status >= threshold:
            self.response_blocked = True
            # httpd's own error page still needs the challenge of a 401.
            for value in headers.get_all("WWW-Authenticate"):
                r.err_headers_out.add("WWW-Authenticate", value)
        elif self.flush_header:
            self.flush()

    def write(self, data: bytes) -> None:
        """Send response body bytes to the client; raises ClientWriteError."""
        if self.response_blocked:
            return
        try:
            self.r.write(data)
        except (OSError, ValueError) as e:
            raise ClientWriteError(str(e) or type(e).__name__) from None
        self.body_bytes += len(data)
        if self.flush_packets:
            self.flush()

    def flush(self) -> None:
        """Push what was written to the client (a zero-length Send Body Chunk asks for it)."""
        if self.response_blocked or not self.response_started:
            return
        try:
            self.r.flush()
        except (OSError, ValueError) as e:
            raise ClientWriteError(str(e) or type(e).__name__) from None


def _none(name: str) -> None:
    """The lookup in an empty environment."""
    return None


def _env_flag(value: str | None, default: bool) -> bool:
    """JK_STICKY_IGNORE / JK_STATELESS: set and empty or a non-zero number means on."""
    if value is None:
        return default
    value = value.strip()
    return not value or (value.lstrip("-").isdigit() and int(value) != 0)
