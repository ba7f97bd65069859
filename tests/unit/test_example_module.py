"""The plugin guide's example module, loaded from outside the package, answers through the real pipeline."""

from __future__ import annotations

from pathlib import Path

from pyhttpd.config import Config
from pyhttpd.http_request import process_request
from pyhttpd.request import Connection, Request

REPO = Path(__file__).resolve().parents[2]


class RecordingTransport:
    """Collects what a request sends."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = b""

    def read_body(self, size: int) -> bytes:
        return b""

    def send_headers(self, r: Request) -> None:
        self.status = r.status
        self.headers = r.headers_out.items()

    def write(self, data: bytes) -> None:
        self.body += data

    def sendfile(self, file, offset: int, count: int) -> None:
        file.seek(offset)
        self.body += file.read(count)

    def flush(self) -> None:
        pass


def test_hello_module_from_examples_answers_with_its_configured_greeting(tmp_path):
    (tmp_path / "htdocs").mkdir()
    conf = tmp_path / "httpd.conf"
    conf.write_text(
        f"ServerRoot {tmp_path}\nDocumentRoot htdocs\n"
        f"LoadModule hello_module {REPO}/examples/mod_hello.py\n"
        "<Location /hello>\n  SetHandler hello\n  HelloGreeting \"Good morning\"\n</Location>\n"
    )
    config = Config.load(str(conf))
    transport = RecordingTransport()
    r = Request(config, Connection("127.0.0.1", 5000, "127.0.0.1", 80), transport)
    r.uri = r.unparsed_uri = "/hello"
    r.args = "name=Ada"
    process_request(r)
    assert transport.status == 200
    assert transport.body == b"Good morning, Ada!\n"
    assert ("Content-Length", "19") in transport.headers
