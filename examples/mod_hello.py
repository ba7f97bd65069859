"""mod_hello: a complete example module for pyhttpd (see docs/modules.md).

    LoadModule hello_module examples/mod_hello.py
    <Location /hello>
        SetHandler hello
        HelloGreeting "Good morning"
    </Location>

GET /hello?name=Ada answers "Good morning, Ada!" as text/plain.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from pyhttpd.directive import Args, Context, Directive, set_str
from pyhttpd.hooks import Hooks
from pyhttpd.module import DECLINED, OK, Module
from pyhttpd.request import Request


@dataclass
class HelloDirConfig:
    """Per-directory settings; None means "not set here", so merging inherits it."""

    greeting: str | None = None


class HelloModule(Module):
    """Answers requests whose handler is "hello" with a greeting."""

    name = "hello_module"
    directives = (
        Directive(
            "HelloGreeting",
            Args.TAKE1,
            Context.OR_ALL,
            "the greeting the hello handler answers with",
            set_str("greeting"),
            syntax="text",
            default="Hello",
            scope="dir",
        ),
    )

    def create_dir_config(self, path: str | None) -> HelloDirConfig:
        return HelloDirConfig()

    def register_hooks(self, hooks: Hooks) -> None:
        hooks.register("handler", self.handler, module=self.name)

    def handler(self, r: Request) -> int:
        if r.handler != "hello":
            return DECLINED
        cfg: HelloDirConfig = r.dir_config(self.name)
        name = parse_qs(r.args or "").get("name", ["world"])[0]
        body = f"{cfg.greeting or 'Hello'}, {name}!\n".encode()
        r.content_type = "text/plain; charset=utf-8"
        r.headers_out.set("Content-Length", str(len(body)))
        r.write(body)
        return OK


hello_module = HelloModule()
