"""Requests served in-process through a real configuration with the static-file modules.

``static_config(tmp_path, conf, files)`` writes a ServerRoot (htdocs, logs, the files) and an
httpd.conf loading mod_alias, mod_dir, mod_mime, mod_authz_core, mod_authz_host and
mod_log_config, then runs post_config as the master does. ``serve(config, "/path")`` decodes
the target with pyhttpd.uri as the protocol does, picks the virtual host and runs the
request through process_request with a transport that records the response.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyhttpd.config import Config
from pyhttpd.http_request import process_request, send_error_response
from pyhttpd.request import Connection, Request
from pyhttpd.server import select_server
from pyhttpd.uri import UriError, decode_path, split_target

MODULES = (
    "LoadModule alias_module modules/mod_alias\n"
    "LoadModule dir_module modules/mod_dir\n"
    "LoadModule mime_module modules/mod_mime\n"
    "LoadModule authz_core_module modules/mod_authz_core\n"
    "LoadModule authz_host_module modules/mod_authz_host\n"
    "LoadModule log_config_module modules/mod_log_config\n"
)


class RecordingTransport:
    """What a client would have received: status, headers, content type and body bytes."""

    def __init__(self, body: bytes = b"") -> None:
        self.body = body
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.content_type: str | None = None
        self.out = bytearray()

    def read_body(self, size: int) -> bytes:
        data, self.body = self.body[:size], self.body[size:]
        return data

    def send_headers(self, r: Request) -> None:
        self.status = r.status
        self.headers = r.headers_out.items() + r.err_headers_out.items()
        self.content_type = r.content_type

    def write(self, data: bytes) -> None:
        self.out += data

    def sendfile(self, file, offset: int, count: int) -> None:  # noqa: ANN001
        self.out += os.pread(file.fileno(), count, offset)

    def flush(self) -> None:
        pass

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def static_config(tmp_path: Path, conf: str = "", files: dict[str, str | bytes] | None = None) -> Config:
    """Load an httpd.conf (ServerRoot tmp_path, DocumentRoot htdocs) with `conf` appended."""
    for name in ("htdocs", "logs", "conf"):
        (tmp_path / name).mkdir(exist_ok=True)
    for name, content in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    httpd_conf = tmp_path / "conf" / "httpd.conf"
    httpd_conf.write_text(
        f"ServerRoot {tmp_path}\n{MODULES}ServerName www.example.com:80\nDocumentRoot htdocs\n{conf}\n"
    )
    config = Config.load(str(httpd_conf))
    config.hooks.run_all("post_config", config)
    return config


def serve(
    config: Config,
    target: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    *,
    body: bytes = b"",
    remote_ip: str = "127.0.0.1",
    local_ip: str = "127.0.0.1",
    local_port: int = 80,
    host: str | None = "www.example.com",
) -> tuple[Request, RecordingTransport]:
    """Run one request for `target` (still encoded, as on the wire) through the hooks."""
    transport = RecordingTransport(body)
    r = Request(config, Connection(remote_ip, 50000, local_ip, local_port), transport)
    r.method = method
    r.header_only = method == "HEAD"
    r.the_request = f"{method} {target} HTTP/1.1"
    r.unparsed_uri = target
    if host is not None:
        r.headers_in.add("Host", host)
    for name, value in (headers or {}).items():
        r.headers_in.add(name, value)
    if body:
        r.remaining = len(body)
    r.server = select_server(config, local_ip, local_port, host)
    r.hostname = host.rsplit(":", 1)[0] if host else None
    try:
        path, r.args, _ = split_target(target)
        r.uri = path if path == "*" else decode_path(path)
    except UriError as e:
        r.per_dir_config = r.server.lookup_defaults
        send_error_response(r, e.status)
        return r, transport
    process_request(r)
    return r, transport
