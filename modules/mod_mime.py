"""mod_mime: content type, charset, encoding and handler from a file's extensions.

As httpd: every extension of the file name counts (`a.tar.gz` has `tar` and `gz`), later
ones win for the type; `AddType`/`AddCharset`/`AddEncoding`/`AddHandler` (per directory)
come before the `TypesConfig` table (default /etc/mime.types). httpd 2.4 sends no
Content-Type for an unknown extension; `DefaultType` names one to send instead.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from pyhttpd.config import Config
from pyhttpd.directive import Args, CmdParms, Context, Directive, DirectiveError, Handler
from pyhttpd.hooks import Hooks
from pyhttpd.log import log_error
from pyhttpd.module import DECLINED, OK, Module
from pyhttpd.request import Request
from pyhttpd.server import Server

DEFAULT_TYPES_CONFIG = "/etc/mime.types"


def read_types(path: str) -> dict[str, str]:
    """extension -> media type from a mime.types file ("type ext ext ..." lines)."""
    table: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            for ext in words[1:]:
                table[ext.lower()] = words[0]
    return table


@dataclass
class MimeServerConfig:
    """TypesConfig and the table read from it."""

    types_config: str | None = None
    types: dict[str, str] | None = None


# (content type, Content-Encoding, handler) for the extension part of a name.
Found = tuple[str | None, str | None, str | None]


@dataclass(eq=False)
class MimeDirConfig:
    """Per-directory extension maps; None means "not set here"."""

    types: dict[str, str] | None = None
    charsets: dict[str, str] | None = None
    encodings: dict[str, str] | None = None
    handlers: dict[str, str] | None = None
    default_type: str | None = None
    # What requests under this (merged) config found, by the extension part of a name
    # (TypesConfig is the main server's alone, so its table is the same for all).
    found: dict[str, Found] = field(default_factory=dict, repr=False)


def _types_config(cmd: CmdParms, cfg: MimeServerConfig, path: str) -> None:
    resolved = cmd.resolve(path)
    try:
        cfg.types = read_types(resolved)
    except OSError as e:
        raise DirectiveError(f"could not open mime types config file {resolved}: {e.strerror}") from None
    cfg.types_config = resolved


def _extension_map(attr: str, lower_value: bool) -> Handler:
    """AddType/AddCharset/AddEncoding/AddHandler: value then extensions (ITERATE2)."""

    def handler(cmd: CmdParms, cfg: MimeDirConfig, value: str, ext: str) -> None:
        ext = ext.lower().removeprefix(".")
        if not ext:
            raise DirectiveError("an extension must not be empty")
        current = dict(getattr(cfg, attr) or {})
        current[ext] = value.lower() if lower_value else value
        setattr(cfg, attr, current)

    return handler


def _default_type(cmd: CmdParms, cfg: MimeDirConfig, value: str) -> None:
    if value.lower() != "none" and "/" not in value:
        raise DirectiveError(f"'{value}' is not a media type (type/subtype) or none")
    cfg.default_type = value


DIR = Context.OR_ALL


class MimeModule(Module):
    """httpd's mod_mime."""

    name = "mime_module"
    directives = (
        Directive("TypesConfig", Args.TAKE1, Context.SERVER, "the mime.types file mapping extensions to media types", _types_config, "file-path", DEFAULT_TYPES_CONFIG),
        Directive("AddType", Args.ITERATE2, DIR, "a media type for file name extensions", _extension_map("types", lower_value=False), "media-type extension [extension] ...", scope="dir"),
        Directive("AddCharset", Args.ITERATE2, DIR, "a charset parameter for file name extensions", _extension_map("charsets", lower_value=False), "charset extension [extension] ...", scope="dir"),
        Directive("AddEncoding", Args.ITERATE2, DIR, "a Content-Encoding for file name extensions", _extension_map("encodings", lower_value=True), "encoding extension [extension] ...", scope="dir"),
        Directive("AddHandler", Args.ITERATE2, DIR, "a handler for file name extensions", _extension_map("handlers", lower_value=True), "handler-name extension [extension] ...", scope="dir"),
        Directive("DefaultType", Args.TAKE1, DIR, "media type of files whose extensions name none (default: no Content-Type)", _default_type, "media-type|none", "none", scope="dir"),
    )

    def create_server_config(self, server: Server) -> MimeServerConfig:
        return MimeServerConfig()

    def create_dir_config(self, path: str | None) -> MimeDirConfig:
        return MimeDirConfig()

    def merge_dir_config(self, base: MimeDirConfig, add: MimeDirConfig) -> MimeDirConfig:
        def both(name: str) -> dict[str, str] | None:
            a, b = getattr(base, name), getattr(add, name)
            return {**a, **b} if a and b else (b or a)

        return MimeDirConfig(
            types=both("types"),
            charsets=both("charsets"),
            encodings=both("encodings"),
            handlers=both("handlers"),
            default_type=add.default_type if add.default_type is not None else base.default_type,
        )

    def register_hooks(self, hooks: Hooks) -> None:
        hooks.register("check_config", self.check_config, module=self.name)
        hooks.register("type_checker", type_checker, module=self.name)

    def check_config(self, config: Config) -> int:
        """Read the default TypesConfig when none was given; vhosts share the main table."""
        main = config.main_server.module_config[self.name]
        if main.types is None:
            try:
                main.types = read_types(DEFAULT_TYPES_CONFIG)
            except OSError as e:
                log_error(config.main_server, "warn", "mime", f"could not read {DEFAULT_TYPES_CONFIG}: {e.strerror}")
                main.types = {}
        return OK


def type_checker(r: Request) -> int:
    """Set r.content_type (with charset), Content-Encoding and r.handler from the extensions."""
    filename = r.filename
    if not filename or (r.finfo is not None and stat.S_ISDIR(r.finfo.st_mode)):
        return DECLINED
    dconf: MimeDirConfig = r.per_dir_config["mime_module"]
    _, dot, exts = filename.rpartition("/")[2].partition(".")
    found = dconf.found.get(exts)
    if found is None:
        found = _find(dconf, r.server.module_config["mime_module"].types or {}, exts.split(".") if dot else [])
        if len(dconf.found) < 4096:
            dconf.found[exts] = found
    content_type, encoding, handler = found
    if content_type is not None:
        r.content_type = content_type
    if encoding is not None:
        r.headers_out.set("Content-Encoding", encoding)
    if handler is not None:
        r.handler = handler
    return OK if found != (None, None, None) else DECLINED


def _find(dconf: MimeDirConfig, table: dict[str, str], exts: list[str]) -> Found:
    content_type = charset = handler = None
    encodings: list[str] = []
    for ext in exts:
        ext = ext.lower()
        if dconf.types and ext in dconf.types:
            content_type = dconf.types[ext]
        elif ext in table:
            content_type = table[ext]
        if dconf.charsets and ext in dconf.charsets:
            charset = dconf.charsets[ext]
        if dconf.encodings and ext in dconf.encodings:
            encodings.append(dconf.encodings[ext])
        if dconf.handlers and ext in dconf.handlers:
            handler = dconf.handlers[ext]
    if content_type is None and dconf.default_type and dconf.default_type.lower() != "none":
        content_type = dconf.default_type
    if charset and content_type and "charset=" not in content_type.lower():
        content_type = f"{content_type}; charset={charset}"
    return content_type, ", ".join(encodings) or None, handler


mime_module = MimeModule()
