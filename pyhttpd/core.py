"""The core module: the directives httpd's core (and its MPM) own.

Read-time directives (ServerRoot, Define, UnDefine, Include, IncludeOptional, LoadModule) are
carried out by the reader; they are declared here so that the context checks and the
directive reference cover them too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyhttpd.conftree import ConfigError
from pyhttpd.directive import (
    Args,
    CmdParms,
    Context,
    Directive,
    DirectiveError,
    merge_set,
    parse_int,
    set_choice,
    set_flag,
    set_int,
    set_seconds,
    set_str,
)
from pyhttpd.module import OK, Module
from pyhttpd.server import Server

if TYPE_CHECKING:
    from pyhttpd.config import Config
    from pyhttpd.hooks import Hooks

LOG_LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug") + tuple(
    f"trace{i}" for i in range(1, 9)
)
SERVER_TOKENS = ("Major", "Minor", "Minimal", "Min", "ProductOnly", "Prod", "OS", "Full")
LISTEN_PROTOCOLS = ("http", "ajp13")


@dataclass
class Listen:
    """One `Listen [address:]port [protocol]` line."""

    host: str  # "" for every address
    port: int
    protocol: str
    file: str
    line: int

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else (self.host or "*")
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ReadTimeout:
    """One stage of RequestReadTimeout (mod_reqtimeout): `timeout` seconds to start with
    (0: no limit), extended by one second per `min_rate` bytes received, up to
    `max_timeout` (0: no cap)."""

    timeout: float
    max_timeout: float = 0.0
    min_rate: int = 0


@dataclass
class CoreServerConfig:
    """Per-server settings of the core; None means "not set here" (inherit when merged)."""

    server_name: str | None = None
    server_port: int | None = None
    server_admin: str | None = None
    document_root: str | None = None
    error_log: str | None = None
    log_level: str | None = None
    module_log_levels: dict[str, str] | None = None
    timeout: float | None = None
    keep_alive: bool | None = None
    keep_alive_timeout: float | None = None
    max_keep_alive_requests: int | None = None
    limit_request_line: int | None = None
    limit_request_field_size: int | None = None
    limit_request_fields: int | None = None
    header_read_timeout: ReadTimeout | None = None  # RequestReadTimeout header=
    body_read_timeout: ReadTimeout | None = None  # RequestReadTimeout body=


@dataclass
class GlobalConfig:
    """Settings of the whole server (GLOBAL_ONLY): listeners, files and the MPM's sizing."""

    listens: list[Listen] = field(default_factory=list)
    listen_backlog: int = 511
    pid_file: str = "logs/httpd.pid"
    scoreboard_file: str | None = None
    server_tokens: str = "Full"
    start_servers: int = 3
    server_limit: int = 16
    thread_limit: int = 64
    threads_per_child: int = 25
    max_request_workers: int | None = None  # ServerLimit x ThreadsPerChild when unset
    min_spare_threads: int = 75
    max_spare_threads: int = 250
    max_connections_per_child: int = 0
    graceful_shutdown_timeout: float = 0.0
    ajp_secret: str | None = None
    ajp_secret_required: bool = True
    ajp_packet_size: int = 8192


MAIN_DEFAULTS = CoreServerConfig(
    server_port=80,
    error_log="logs/error_log",
    log_level="warn",
    module_log_levels={},
    timeout=60.0,
    keep_alive=True,
    keep_alive_timeout=5.0,
    max_keep_alive_requests=100,
    limit_request_line=8190,
    limit_request_field_size=8190,
    limit_request_fields=100,
    header_read_timeout=ReadTimeout(20.0, 40.0, 500),
    body_read_timeout=ReadTimeout(20.0, 0.0, 500),
)


@dataclass
class CoreDirConfig:
    """Per-directory settings of the core."""

    options: frozenset[str] | None = None  # set by an absolute Options line
    options_add: frozenset[str] | None = None  # Options +X: applied over the inherited set
    options_remove: frozenset[str] | None = None  # Options -X
    handler: str | None = None  # SetHandler
    force_type: str | None = None
    error_documents: dict[int, str] | None = None
    limit_request_body: int | None = None
    server_signature: str | None = None


DEFAULT_OPTIONS = frozenset({"FollowSymLinks"})  # httpd 2.4's default
OPTIONS = ("FollowSymLinks", "SymLinksIfOwnerMatch", "Indexes", "ExecCGI", "Includes", "IncludesNOEXEC", "MultiViews")


def _noop(cmd: CmdParms, cfg: Any, *args: Any) -> None:
    """Read-time directives are carried out by the reader."""


def _listen(cmd: CmdParms, cfg: Any, addr: str, protocol: str = "http") -> None:
    host, port_text = "", addr
    if addr.startswith("["):
        end = addr.find("]:")
        if end < 0:
            raise DirectiveError(f"bad address '{addr}': IPv6 addresses are written [addr]:port")
        host, port_text = addr[1:end], addr[end + 2 :]
    elif ":" in addr:
        host, port_text = addr.rsplit(":", 1)
    port = parse_int("Listen", port_text, 1, 65535) if port_text.isdigit() else None
    if port is None:
        raise DirectiveError(f"Port must be specified: '{addr}'")
    if protocol.lower() not in LISTEN_PROTOCOLS:
        raise DirectiveError(f"unknown protocol '{protocol}' (known: {', '.join(LISTEN_PROTOCOLS)})")
    g = cmd.config.global_config
    for other in g.listens:
        if (other.host, other.port) == (host, port):
            raise DirectiveError(f"Cannot define multiple Listeners on the same IP:port ({addr})")
    g.listens.append(Listen(host, port, protocol.lower(), cmd.node.file, cmd.node.line))


def _global(attr: str, parse: Any) -> Any:
    """A GLOBAL_ONLY directive stored in the GlobalConfig."""

    def handler(cmd: CmdParms, cfg: Any, *args: str) -> None:
        setattr(cmd.config.global_config, attr, parse(cmd, *args))

    return handler


def _int_of(minimum: int = 0, maximum: int | None = None) -> Any:
    return lambda cmd, v: parse_int(cmd.directive.name, v, minimum, maximum)


def _server_name(cmd: CmdParms, cfg: CoreServerConfig, value: str) -> None:
    name, port = value, None
    if "://" in name:
        name = name.split("://", 1)[1]
    if not name.endswith("]") and ":" in name:
        name, port_text = name.rsplit(":", 1)
        port = parse_int("ServerName", port_text, 1, 65535)
    cfg.server_name = name
    cfg.server_port = port
    cmd.server.server_hostname = name
    if port:
        cmd.server.port = port


def _server_alias(cmd: CmdParms, cfg: CoreServerConfig, value: str) -> None:
    if not cmd.server.is_virtual:
        raise DirectiveError("ServerAlias only used in <VirtualHost>")
    cmd.server.aliases.append(value)


def _document_root(cmd: CmdParms, cfg: CoreServerConfig, value: str) -> None:
    path = cmd.resolve(value)
    if not os.path.isdir(path):
        raise DirectiveError(f"DocumentRoot '{value}' is not a directory, or is not readable")
    cfg.document_root = path.rstrip("/") or "/"


def _log_level(cmd: CmdParms, cfg: CoreServerConfig, args: list[str]) -> None:
    if not args:
        raise DirectiveError("LogLevel requires at least one level")
    levels = dict(cfg.module_log_levels or {})
    for arg in args:
        module, _, level = arg.rpartition(":")
        if level.lower() not in LOG_LEVELS:
            raise DirectiveError(f"unknown level '{level}' (levels: {', '.join(LOG_LEVELS[:8])}, trace1..8)")
        if module:
            levels[module.removesuffix("_module")] = level.lower()
        else:
            cfg.log_level = level.lower()
    cfg.module_log_levels = levels


def _request_read_timeout(cmd: CmdParms, cfg: CoreServerConfig, args: list[str]) -> None:
    if not args:
        raise DirectiveError("RequestReadTimeout requires at least one stage=timeout argument")
    for arg in args:
        stage, sep, spec = arg.partition("=")
        stage = stage.lower()
        if not sep or stage not in ("handshake", "header", "body"):
            raise DirectiveError(f"unknown argument '{arg}': expected handshake=, header= or body=")
        timeout_text, _, rate_text = spec.partition(",")
        low, dash, high = timeout_text.partition("-")
        try:
            timeout = float(low)
            max_timeout = float(high) if dash else 0.0
        except ValueError:
            raise DirectiveError(f"'{timeout_text}' is not a timeout[-maxtimeout] in seconds") from None
        rate = 0
        if rate_text:
            name, _, value = rate_text.partition("=")
            if name.lower() != "minrate" or not value.isdigit() or int(value) == 0:
                raise DirectiveError(f"'{rate_text}' is not MinRate=bytes-per-second")
            rate = int(value)
        if timeout < 0 or (dash and (max_timeout <= timeout or not rate)):
            raise DirectiveError(f"'{spec}': the maximum must exceed the timeout and needs a MinRate")
        if stage != "handshake":  # TLS handshakes are not served here
            setattr(cfg, f"{stage}_read_timeout", ReadTimeout(timeout, max_timeout, rate))


def _options(cmd: CmdParms, cfg: CoreDirConfig, args: list[str]) -> None:
    """Options as httpd's: a list without +/- replaces the inherited set; +X/-X adjust it."""
    known = {o.lower(): o for o in OPTIONS}
    signed = [a[:1] in "+-" for a in args]
    if any(signed) and not all(signed):
        raise DirectiveError("Either all Options must start with + or -, or no Option may.")
    plus = set(cfg.options_add or ())
    minus = set(cfg.options_remove or ())
    absolute: set[str] | None = None if any(signed) else set()
    for arg in args:
        sign, word = (arg[0], arg[1:]) if arg[:1] in "+-" else ("", arg)
        lw = word.lower()
        if lw == "none" and not sign:
            absolute = set()
            continue
        if lw == "all":
            chosen = set(OPTIONS) - {"MultiViews"}
        elif lw in known:
            chosen = {known[lw]}
        else:
            raise DirectiveError(f"Illegal option {word}")
        if absolute is not None:
            absolute |= chosen
        elif sign == "-":
            minus |= chosen
            plus -= chosen
        else:
            plus |= chosen
            minus -= chosen
    if absolute is not None:
        cfg.options, cfg.options_add, cfg.options_remove = frozenset(absolute), None, None
    elif cfg.options is not None:
        cfg.options = frozenset((cfg.options | plus) - minus)
    else:
        cfg.options_add, cfg.options_remove = frozenset(plus), frozenset(minus)


def _unless_none(attr: str) -> Any:
    """SetHandler/ForceType: "none" undoes an inherited value. It is kept as "" rather than
    None, so that merging still overrides the parent section's value, and a request needs no
    comparison to tell it from a real handler or type."""

    def handler(cmd: CmdParms, cfg: CoreDirConfig, value: str) -> None:
        setattr(cfg, attr, "" if value.lower() == "none" else value)

    return handler


def _error_document(cmd: CmdParms, cfg: CoreDirConfig, code: str, action: str) -> None:
    status = parse_int("ErrorDocument", code, 400, 599)
    docs = dict(cfg.error_documents or {})
    docs[status] = action
    cfg.error_documents = docs


def _limit_request_body(cmd: CmdParms, cfg: CoreDirConfig, value: str) -> None:
    cfg.limit_request_body = parse_int("LimitRequestBody", value, 0, 2**31 - 1)


GLOBAL = Context.GLOBAL_ONLY
RSRC = Context.RSRC_CONF
ALL = Context.OR_ALL
ACCESS = Context.ACCESS_CONF


class CoreModule(Module):
    """httpd's core and MPM directives."""

    name = "core"
    directives = (
        Directive("ServerRoot", Args.TAKE1, GLOBAL, "the root directory of the server", _noop, "directory", "."),
        Directive("Define", Args.TAKE12, RSRC, "define a variable for ${VAR} and <IfDefine>", _noop, "name [value]"),
        Directive("UnDefine", Args.TAKE1, RSRC, "undefine a variable", _noop, "name"),
        Directive("Include", Args.TAKE1, ALL, "include configuration files (wildcards allowed)", _noop, "file-path|directory-path|wildcard"),
        Directive("IncludeOptional", Args.TAKE1, ALL, "include configuration files; no error when nothing matches", _noop, "file-path|directory-path|wildcard"),
        Directive("LoadModule", Args.TAKE2, GLOBAL, "load a module: name and file, import path or entry point", _noop, "module filename"),
        Directive("Listen", Args.TAKE12, GLOBAL, "an address and port to listen on, and the protocol (http or ajp13)", _listen, "[IP-address:]portnumber [protocol]"),
        Directive("ListenBacklog", Args.TAKE1, GLOBAL, "maximum length of the queue of pending connections", _global("listen_backlog", _int_of(1)), "backlog", "511"),
        Directive("PidFile", Args.TAKE1, GLOBAL, "file where the master records its process id", _global("pid_file", lambda cmd, v: cmd.resolve(v)), "filename", "logs/httpd.pid"),
        Directive("ScoreBoardFile", Args.TAKE1, GLOBAL, "file backing the shared scoreboard (default: anonymous shared memory)", _global("scoreboard_file", lambda cmd, v: cmd.resolve(v)), "file-path"),
        Directive("ServerTokens", Args.TAKE1, GLOBAL, "how much the Server header says", _global("server_tokens", lambda cmd, v: _choice(v, SERVER_TOKENS)), "Major|Minor|Min[imal]|Prod[uctOnly]|OS|Full", "Full"),
        Directive("ServerName", Args.TAKE1, RSRC, "hostname and port the server uses to identify itself", _server_name, "[scheme://]domain-name|ip-address[:port]"),
        Directive("ServerAlias", Args.ITERATE, Context.VIRTUALHOST, "other names a virtual host answers to (wildcards allowed)", _server_alias, "hostname [hostname] ..."),
        Directive("ServerAdmin", Args.TAKE1, RSRC, "email address the server includes in error messages", set_str("server_admin"), "email-address|URL"),
        Directive("DocumentRoot", Args.TAKE1, RSRC, "directory that forms the main document tree", _document_root, "directory-path", "htdocs"),
        Directive("ErrorLog", Args.TAKE1, RSRC, "file where the server logs errors", set_str("error_log", path=True), "file-path", "logs/error_log"),
        Directive("LogLevel", Args.TAKE_ARGV, RSRC, "verbosity of the error log, optionally per module (jk:debug)", _log_level, "[module:]level [module:level] ...", "warn"),
        Directive("Timeout", Args.TAKE1, RSRC, "seconds to wait for certain events before failing a request", set_seconds("timeout"), "seconds", "60"),
        Directive("KeepAlive", Args.FLAG, RSRC, "enables persistent HTTP connections", set_flag("keep_alive"), "On|Off", "On"),
        Directive("KeepAliveTimeout", Args.TAKE1, RSRC, "seconds to wait for the next request on a persistent connection", set_seconds("keep_alive_timeout"), "seconds", "5"),
        Directive("MaxKeepAliveRequests", Args.TAKE1, RSRC, "requests allowed on a persistent connection (0: unlimited)", set_int("max_keep_alive_requests", 0), "number", "100"),
        Directive("LimitRequestLine", Args.TAKE1, RSRC, "maximum size of the request line (414 above it)", set_int("limit_request_line", 0), "bytes", "8190"),
        Directive("LimitRequestFieldSize", Args.TAKE1, RSRC, "maximum size of one request header field", set_int("limit_request_field_size", 0), "bytes", "8190"),
        Directive("LimitRequestFields", Args.TAKE1, RSRC, "maximum number of request header fields", set_int("limit_request_fields", 0), "number", "100"),
        Directive("RequestReadTimeout", Args.TAKE_ARGV, RSRC, "time and minimum rate to receive the request headers and body (408 otherwise)", _request_read_timeout, "[header=timeout[-maxtimeout][,MinRate=rate]] [body=timeout[-maxtimeout][,MinRate=rate]]", "header=20-40,MinRate=500 body=20,MinRate=500"),
        Directive("LimitRequestBody", Args.TAKE1, ALL, "maximum size of a request body (413 above it; 0: unlimited)", _limit_request_body, "bytes", "0", scope="dir"),
        Directive("Options", Args.TAKE_ARGV, ALL, "features available in a directory (FollowSymLinks, Indexes...)", _options, "[+|-]option [[+|-]option] ...", "FollowSymLinks", scope="dir"),
        Directive("SetHandler", Args.TAKE1, ALL, "handler for every request in the section", _unless_none("handler"), "handler-name|none", scope="dir"),
        Directive("ForceType", Args.TAKE1, ALL, "content type for every file in the section", _unless_none("force_type"), "media-type|None", scope="dir"),
        Directive("ErrorDocument", Args.TAKE2, ALL, "what the server returns to the client for an error status", _error_document, "error-code document", scope="dir"),
        Directive("ServerSignature", Args.TAKE1, ALL, "footer on server-generated documents", set_choice("server_signature", ("On", "Off", "EMail")), "On|Off|EMail", "Off", scope="dir"),
        Directive("StartServers", Args.TAKE1, GLOBAL, "child processes created at startup", _global("start_servers", _int_of(1)), "number", "3"),
        Directive("ServerLimit", Args.TAKE1, GLOBAL, "upper limit on the number of child processes", _global("server_limit", _int_of(1, 20000)), "number", "16"),
        Directive("ThreadLimit", Args.TAKE1, GLOBAL, "upper limit on ThreadsPerChild", _global("thread_limit", _int_of(1, 20000)), "number", "64"),
        Directive("ThreadsPerChild", Args.TAKE1, GLOBAL, "worker greenlets in each child process", _global("threads_per_child", _int_of(1)), "number", "25"),
        Directive("MaxRequestWorkers", Args.TAKE1, GLOBAL, "connections served at the same time", _global("max_request_workers", _int_of(1)), "number", "ServerLimit x ThreadsPerChild"),
        Directive("MaxClients", Args.TAKE1, GLOBAL, "old name of MaxRequestWorkers", _global("max_request_workers", _int_of(1)), "number"),
        Directive("MinSpareThreads", Args.TAKE1, GLOBAL, "minimum number of idle workers", _global("min_spare_threads", _int_of(1)), "number", "75"),
        Directive("MaxSpareThreads", Args.TAKE1, GLOBAL, "maximum number of idle workers", _global("max_spare_threads", _int_of(1)), "number", "250"),
        Directive("MaxConnectionsPerChild", Args.TAKE1, GLOBAL, "connections a child serves before it exits (0: never)", _global("max_connections_per_child", _int_of(0)), "number", "0"),
        Directive("MaxRequestsPerChild", Args.TAKE1, GLOBAL, "old name of MaxConnectionsPerChild", _global("max_connections_per_child", _int_of(0)), "number"),
        Directive("GracefulShutdownTimeout", Args.TAKE1, GLOBAL, "seconds a graceful stop waits for children (0: forever)", _global("graceful_shutdown_timeout", lambda cmd, v: float(_int_of(0)(cmd, v))), "seconds", "0"),
        Directive("AjpSecret", Args.TAKE1, GLOBAL, "secret every request on an ajp13 listener must carry (mod_jk's worker.X.secret)", _global("ajp_secret", lambda cmd, v: v), "secret"),
        Directive("AjpSecretRequired", Args.FLAG, GLOBAL, "refuse to start an ajp13 listener without AjpSecret (CVE-2020-1938)", _global("ajp_secret_required", lambda cmd, v: v), "On|Off", "On"),
        Directive("AjpPacketSize", Args.TAKE1, GLOBAL, "largest AJP13 packet on ajp13 listeners; must equal mod_jk's max_packet_size", _global("ajp_packet_size", _int_of(8192, 65536)), "bytes", "8192"),
    )

    def register_hooks(self, hooks: Hooks) -> None:
        # Imported here: both import pyhttpd.log, which imports this module.
        from pyhttpd import default_handler, mapping

        hooks.register("check_config", _check_ajp_secret, module="core")
        mapping.register_hooks(hooks)
        default_handler.register_hooks(hooks)

    def create_server_config(self, server: Server) -> CoreServerConfig:
        if server.is_virtual:
            return CoreServerConfig()
        return CoreServerConfig(**{**MAIN_DEFAULTS.__dict__, "module_log_levels": {}})

    def create_dir_config(self, path: str | None) -> CoreDirConfig:
        return CoreDirConfig()

    def merge_dir_config(self, base: CoreDirConfig, add: CoreDirConfig) -> CoreDirConfig:
        merged = merge_set(base, add)
        if add.options is None and (add.options_add or add.options_remove):
            inherited = DEFAULT_OPTIONS if base.options is None else base.options
            merged.options = frozenset((inherited | (add.options_add or set())) - (add.options_remove or set()))
        merged.options_add = merged.options_remove = None
        if base.error_documents and add.error_documents:
            merged.error_documents = {**base.error_documents, **add.error_documents}
        return merged


def _check_ajp_secret(config: Config) -> int:
    """An ajp13 listener without a secret lets anyone who reaches it forge requests and read
    files: CVE-2020-1938 "Ghostcat". Like Tomcat's secretRequired, refuse to start."""
    g = config.global_config
    if g.ajp_secret_required and not g.ajp_secret:
        for listen in g.listens:
            if listen.protocol == "ajp13":
                raise ConfigError(
                    listen.file,
                    listen.line,
                    "Listen",
                    f"the ajp13 listener {listen.address} needs AjpSecret (or AjpSecretRequired Off): "
                    'an open AJP port is CVE-2020-1938 "Ghostcat"',
                )
    return OK


def _choice(value: str, choices: tuple[str, ...]) -> str:
    for c in choices:
        if c.lower() == value.lower():
            return c
    raise DirectiveError(f"'{value}' is not one of {', '.join(choices)}")


core_module = CoreModule()
