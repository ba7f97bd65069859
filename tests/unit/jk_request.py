"""Requests served in-process through a real configuration with mod_jk loaded.

``jk_config(tmp_path, workers, conf)`` writes workers.properties and httpd.conf and loads
them; ``serve(config, "GET /path")`` runs one request through pyhttpd's hook sequence with
a transport that records what the client would have received.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import unquote

from pyhttpd.config import Config
from pyhttpd.http_request import process_request
from pyhttpd.request import Connection, Request
from pyhttpd.server import select_server


class RecordingTransport:
    """A client connection that keeps what was sent; ``fail_writes_after`` simulates a
    client that goes away after that many writes."""

    def __init__(self, body: bytes | list[bytes] = b"", fail_writes_after: int | None = None,
                 read_error: Exception | None = None) -> None:
        self.body = io.BytesIO(body) if isinstance(body, bytes) else None
        self.parts = list(body) if isinstance(body, list) else []
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.content_type: str | None = None
        self.out = bytearray()
        self.writes = 0
        self.flushes = 0
        self.fail_writes_after = fail_writes_after
        self.read_error = read_error  # raised once the body given has been read

    def read_body(self, size: int) -> bytes:
        if self.read_error is not None and self.body is not None and self.body.tell() == len(self.body.getvalue()):
            raise self.read_error
        if self.body is not None:
            return self.body.read(size)
        if not self.parts:
            return b""
        part = self.parts[0]
        self.parts[0] = part[size:]
        if not self.parts[0]:
            self.parts.pop(0)
        return part[:size]

    def send_headers(self, r: Request) -> None:
        self.status = r.status
        self.headers = r.headers_out.items() + r.err_headers_out.items()
        self.content_type = r.content_type

    def write(self, data: bytes) -> None:
        if self.fail_writes_after is not None and self.writes >= self.fail_writes_after:
            raise BrokenPipeError("the client went away")
        self.writes += 1
        self.out += data

    def sendfile(self, file, offset: int, count: int) -> None:  # noqa: ANN001
        file.seek(offset)
        self.write(file.read(count))

    def flush(self) -> None:
        self.flushes += 1

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def jk_config(tmp_path: Path, workers: str, conf: str = "JkMount /* node1", *,
              threads_per_child: int = 4) -> Config:
    """Load an httpd.conf with mod_jk, ``workers`` as workers.properties and ``conf`` after it."""
    (tmp_path / "htdocs").mkdir(parents=True, exist_ok=True)
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "workers.properties").write_text(workers)
    httpd_conf = tmp_path / "httpd.conf"
    httpd_conf.write_text(
        f"ServerRoot {tmp_path}\nServerName www.example.com:8080\nDocumentRoot htdocs\n"
        f"ThreadsPerChild {threads_per_child}\nThreadLimit 64\n"
        "LoadModule jk_module modules/mod_jk\n"
        f"JkWorkersFile {tmp_path}/workers.properties\nJkLogFile logs/mod_jk.log\n{conf}\n"
    )
    config = Config.load(str(httpd_conf))
    config.hooks.run_all("post_config", config)
    return config


def ajp_worker(port: int, name: str = "node1", **props: object) -> str:
    """workers.properties text for one ajp13 worker on 127.0.0.1:``port``."""
    lines = [f"worker.list={name}", f"worker.{name}.type=ajp13", f"worker.{name}.host=127.0.0.1",
             f"worker.{name}.port={port}"]
    lines += [f"worker.{name}.{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def serve(config: Config, request_line: str, headers: dict[str, str] | None = None,
          body: bytes | list[bytes] = b"", *, transport: RecordingTransport | None = None,
          host: str | None = None, env: dict[str, str] | None = None) -> tuple[Request, RecordingTransport]:
    """Run one request (``"GET /path?query"``) through the hooks; returns it and its transport."""
    method, target = request_line.split(" ", 1)
    transport = transport or RecordingTransport(body)
    connection = Connection("127.0.0.1", 40000, "127.0.0.1", 8080)
    r = Request(config, connection, transport)
    r.method = method
    r.header_only = method == "HEAD"
    r.the_request = f"{method} {target} HTTP/1.1"
    r.unparsed_uri = target
    path, sep, query = target.partition("?")
    r.uri = unquote(path, errors="surrogateescape")
    r.args = query if sep else None
    r.hostname = host or "www.example.com"
    r.server = select_server(config, connection.local_ip, connection.local_port, r.hostname)
    r.headers_in.add("Host", f"{r.hostname}:8080")
    for name, value in (headers or {}).items():
        r.headers_in.add(name, value)
    r.subprocess_env.update(env or {})
    if "Content-Length" in (headers or {}):
        r.remaining = int(headers["Content-Length"])
    elif isinstance(body, bytes) and body and "Transfer-Encoding" not in (headers or {}):
        r.headers_in.add("Content-Length", str(len(body)))
        r.remaining = len(body)
    process_request(r)
    return r, transport


def page(transport: RecordingTransport) -> dict[str, str]:
    """The ``key=value`` lines the fake container's echo handler answers with."""
    fields: dict[str, str] = {}
    for line in transport.out.decode("utf-8", "surrogateescape").splitlines():
        key, _, value = line.partition("=")
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields
