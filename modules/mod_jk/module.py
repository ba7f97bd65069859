"""mod_jk for pyhttpd: the Jk* directives and the hooks that forward mapped requests.

Configured as Apache's mod_jk (apache.html): JkWorkersFile and JkWorkerProperty define the
workers, JkMount / JkUnMount / JkMountFile / workers' ``mount`` map URIs to them with
mod_jk's precedence, per server and virtual host (a virtual host sees the global mounts
only with JkMountCopy). ``-t`` checks that every mapped worker exists.

Per request, as mod_jk.c: translate_name maps the URI and sets the handler
``jakarta-servlet`` with the worker's name in the note JK_WORKER_NAME; map_to_storage
keeps httpd from looking for a file; the handler builds the service request and lets the
worker serve it. ``SetHandler jakarta-servlet`` with the environment variable
JK_WORKER_NAME (JkWorkerIndicator) picks a worker by hand; ``no-jk`` declines.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from pyhttpd.conftree import ConfigError
from pyhttpd.directive import (
    Args,
    CmdParms,
    Context,
    Directive,
    DirectiveError,
    parse_int,
    set_flag,
)
from pyhttpd.hooks import Hooks
from pyhttpd.log import log_error, log_rerror
from pyhttpd.module import DECLINED, DONE, FIRST, OK, Module
from pyhttpd.request import Request
from pyhttpd.scoreboard import SegmentLock
from pyhttpd.server import Server

from .ajp_worker import Outcome
from .jk_log import (
    DEFAULT_FILE,
    DEFAULT_LEVEL,
    DEFAULT_STAMP_FORMAT,
    LEVELS,
    JkLog,
    check_request_format,
    format_request,
)
from .service import ServiceRequest
from .uri_map import (
    DEFAULT_RELOAD,
    MountFile,
    Source,
    UriError,
    UriMapError,
    UriWorkerMap,
    parse_rule,
)
from .worker_registry import WorkerRegistry
from .workers import WorkersError, parse_workers_properties

JK_HANDLER = "jakarta-servlet"
NOTE_WORKER_NAME = "JK_WORKER_NAME"
NOTE_WORKER_TYPE = "JK_WORKER_TYPE"
NOTE_WORKER_ROUTE = "JK_WORKER_ROUTE"
NOTE_REQUEST_DURATION = "JK_REQUEST_DURATION"
DEFAULT_WORKERS_FILE = "conf/workers.properties"
SESSION_PATH_PARAMETER = ";jsessionid"
SHM_SEGMENT = "jk"  # the scoreboard segment of the lb workers' shared state
MIN_SHM_SIZE = 64 * 1024  # room for workers added by a graceful restart
_REQUEST_KEY = "jk"  # r.request_config: (rule extensions, URI before normalisation)

URI_OPTIONS = ("ForwardURIProxy", "ForwardURICompatUnparsed", "ForwardURICompat", "ForwardURIEscaped")
OPTIONS = (
    *URI_OPTIONS,
    "ForwardDirectories",
    "ForwardLocalAddress",
    "ForwardPhysicalAddress",
    "ForwardSSLCertChain",
    "ForwardKeySize",
    "FlushPackets",
    "FlushHeader",
    "DisableReuse",
    "RejectUnsafeURI",
)
# Accepted for old configurations; since mod_jk 1.2.44 slashes are always collapsed.
IGNORED_OPTIONS = ("CollapseSlashesAll", "CollapseSlashesNone", "CollapseSlashesUnmount")
DEFAULT_OPTIONS = frozenset({"ForwardURIProxy"})

# Jk*Indicator directives: the environment variable each one names, and its default.
INDICATORS = {
    "JkWorkerIndicator": ("worker", "JK_WORKER_NAME"),
    "JkRemoteAddrIndicator": ("remote_addr", "JK_REMOTE_ADDR"),
    "JkRemotePortIndicator": ("remote_port", "JK_REMOTE_PORT"),
    "JkRemoteHostIndicator": ("remote_host", "JK_REMOTE_HOST"),
    "JkRemoteUserIndicator": ("remote_user", "JK_REMOTE_USER"),
    "JkAuthTypeIndicator": ("auth_type", "JK_AUTH_TYPE"),
    "JkLocalNameIndicator": ("local_name", "JK_LOCAL_NAME"),
    "JkLocalAddrIndicator": ("local_addr", "JK_LOCAL_ADDR"),
    "JkLocalPortIndicator": ("local_port", "JK_LOCAL_PORT"),
    "JkIgnoreCLIndicator": ("ignore_cl", "JK_IGNORE_CL"),
    "JkHTTPSIndicator": ("https", "HTTPS"),
    "JkSSLPROTOCOLIndicator": ("ssl_protocol", "SSL_PROTOCOL"),
    "JkCERTSIndicator": ("certs", "SSL_CLIENT_CERT"),
    "JkCIPHERIndicator": ("cipher", "SSL_CIPHER"),
    "JkSESSIONIndicator": ("session", "SSL_SESSION_ID"),
    "JkKEYSIZEIndicator": ("key_size", "SSL_CIPHER_USEKEYSIZE"),
    "JkCERTCHAINPrefix": ("certchain_prefix", "SSL_CLIENT_CERT_CHAIN_"),
}
_INDICATOR_DEFAULTS = dict(INDICATORS.values())


@dataclass(frozen=True)
class Mount:
    """One JkMount or JkUnMount line."""

    pattern: str
    worker: str
    file: str
    line: int
    unmount: bool = False


@dataclass
class JkState:
    """What mod_jk built from one configuration: the workers and the log files."""

    workers_file: str
    registry: WorkerRegistry
    logs: dict[str, JkLog] = field(default_factory=dict)
    watchdog_interval: int = 0
    watchdog: threading.Thread | None = None
    stopping: bool = False
    shm_file: tuple[mmap.mmap, int] | None = None  # JkShmFile: its mapping and descriptor

    def release(self) -> None:
        """Close the log files and the JkShmFile mapping this process holds."""
        for log in self.logs.values():
            log.close()
        if self.shm_file is not None:
            mapping, fd = self.shm_file
            try:
                mapping.close()
            except BufferError:
                return  # this very process serves with it (-X): it stays until exit
            os.close(fd)
            self.shm_file = None


@dataclass
class JkServerConfig:
    """mod_jk's settings of the main server or a virtual host; None means "not set here".

    The global ones (JkWorkersFile, JkWorkerProperty, JkShmFile, JkShmSize,
    JkWatchdogInterval, JkMountCopy All) are only set on the main server's.
    """

    mounts: list[Mount] | None = None
    mount_file: str | None = None
    mount_file_reload: int | None = None
    mount_copy: bool | None = None
    options_on: frozenset[str] | None = None
    options_off: frozenset[str] | None = None
    env_vars: dict[str, str | None] | None = None
    strip_session: bool | None = None
    strip_session_name: str | None = None
    log_file: str | None = None
    log_level: str | None = None
    log_stamp_format: str | None = None
    request_log_format: str | None = None
    extract_ssl: bool | None = None
    indicators: dict[str, str] | None = None
    # global
    workers_file: str | None = None
    worker_properties: list[tuple[str, int, str]] | None = None
    shm_file: str | None = None
    shm_size: int | None = None
    watchdog_interval: int | None = None
    mount_copy_all: bool | None = None
    # built by check_config / post_config
    effective_options: frozenset[str] = DEFAULT_OPTIONS
    indicator_names: dict[str, str] = field(default_factory=lambda: dict(_INDICATOR_DEFAULTS))
    uri_map: UriWorkerMap | None = None
    state: JkState | None = None
    log: JkLog | None = None

    def indicator(self, key: str) -> str:
        """The environment variable a Jk*Indicator names (``"worker"`` -> JK_WORKER_NAME)."""
        indicators = self.indicators
        if indicators and key in indicators:
            return indicators[key]
        return _INDICATOR_DEFAULTS[key]


# -- directive handlers ------------------------------------------------------------------


def _mount(unmount: bool) -> Any:
    name = "JkUnMount" if unmount else "JkMount"

    def handler(cmd: CmdParms, cfg: JkServerConfig, first: str, second: str | None = None) -> None:
        in_location = cmd.section is not None
        if in_location and second is not None:
            raise DirectiveError(f"{name} can not have a path when defined in a location")
        if not in_location and second is None:
            raise DirectiveError(f"{name} needs a path when not defined in a location")
        pattern, worker = (cmd.section.pattern, first) if cmd.section is not None else (first, second or "")
        if not pattern.startswith("/"):
            raise DirectiveError(f"{name} context should start with /")
        cfg.mounts = [*(cfg.mounts or []), Mount(pattern, worker, cmd.node.file, cmd.node.line, unmount)]

    return handler


def _workers_file(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
    if cfg.workers_file is not None:
        raise DirectiveError("JkWorkersFile only allowed once")
    path = cmd.resolve(value)
    if not os.path.isfile(path):
        raise DirectiveError(f"Can't find the workers file specified: {path}")
    cfg.workers_file = path


def _worker_property(cmd: CmdParms, cfg: JkServerConfig, raw: str) -> None:
    text = raw.strip()
    if "=" not in text:
        raise DirectiveError("expected a workers.properties line, worker.<name>.<attribute>=<value>")
    cfg.worker_properties = [*(cfg.worker_properties or []), (cmd.node.file, cmd.node.line, text)]


def _mount_file(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
    path = cmd.resolve(value)
    if not os.path.isfile(path):
        raise DirectiveError(f"Can't find the mount file specified: {path}")
    cfg.mount_file = path


def _mount_file_reload(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
    cfg.mount_file_reload = parse_int("JkMountFileReload", value, 0)


def _mount_copy(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
    word = value.lower()
    if word == "all":
        if cmd.server.is_virtual:
            raise DirectiveError("JkMountCopy All is only allowed in the main server")
        cfg.mount_copy_all = True
    elif word in ("on", "off"):
        cfg.mount_copy = word == "on"
    else:
        raise DirectiveError("JkMountCopy must be All, On or Off")


def _options(cmd: CmdParms, cfg: JkServerConfig, args: list[str]) -> None:
    known = {o.lower(): o for o in OPTIONS}
    ignored = {o.lower() for o in IGNORED_OPTIONS}
    on, off = set(cfg.options_on or ()), set(cfg.options_off or ())
    for arg in args:
        sign, word = (arg[0], arg[1:]) if arg[:1] in "+-" else ("+", arg)
        if word.lower() in ignored:
            continue
        option = known.get(word.lower())
        if option is None:
            raise DirectiveError(f"JkOptions: Illegal option '{word}'")
        if option in URI_OPTIONS:
            if sign == "-":
                raise DirectiveError(f"JkOptions: Illegal option '-{option}': option can not be disabled")
            on -= set(URI_OPTIONS)
        (off if sign == "-" else on).discard(option)
        (on if sign == "+" else off).add(option)
    cfg.options_on, cfg.options_off = frozenset(on), frozenset(off)


def _env_var(cmd: CmdParms, cfg: JkServerConfig, name: str, default: str | None = None) -> None:
    cfg.env_vars = {**(cfg.env_vars or {}), name: default}


def _strip_session(cmd: CmdParms, cfg: JkServerConfig, flag: str, name: str | None = None) -> None:
    if flag.lower() not in ("on", "off"):
        raise DirectiveError("JkStripSession must be On or Off, optionally followed by the name "
                             "of the session path parameter")
    cfg.strip_session = flag.lower() == "on"
    cfg.strip_session_name = (";" + name.lstrip(";")) if name else SESSION_PATH_PARAMETER


def _log_file(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
    cfg.log_file = value if value.startswith("|") else cmd.resolve(value)


def _log_level(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
    level = value.lower()
    if level not in LEVELS:
        raise DirectiveError(f"JkLogLevel must be one of {', '.join(LEVELS)}")
    cfg.log_level = level


def _stamp_format(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
    if len(value) > 63:
        raise DirectiveError("JkLogStampFormat is limited to 63 characters")
    cfg.log_stamp_format = value


def _request_log_format(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
    problem = check_request_format(value)
    if problem:
        raise DirectiveError(problem)
    cfg.request_log_format = value


def _shm_file(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
    cfg.shm_file = value if value.lower() == "none" else cmd.resolve(value)


def _shm_size(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
    cfg.shm_size = parse_int("JkShmSize", value, 0)


def _watchdog(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
    cfg.watchdog_interval = parse_int("JkWatchdogInterval", value, 0)


def _indicator(directive: str) -> Any:
    key = INDICATORS[directive][0]

    def handler(cmd: CmdParms, cfg: JkServerConfig, value: str) -> None:
        cfg.indicators = {**(cfg.indicators or {}), key: value}

    return handler


RSRC = Context.RSRC_CONF
GLOBAL = Context.GLOBAL_ONLY
MOUNT_CONTEXT = Context.RSRC_CONF | Context.LOCATION


class JkModule(Module):
    """Apache's mod_jk: forwards mapped requests to Tomcat over AJP13."""

    name = "jk_module"
    log_name = "jk"
    master_state: JkState | None = None  # the generation whose files the master holds
    directives = (
        Directive("JkWorkersFile", Args.TAKE1, GLOBAL, "the workers.properties file that defines the workers", _workers_file, "file-path", DEFAULT_WORKERS_FILE),
        Directive("JkWorkerProperty", Args.RAW_ARGS, GLOBAL, "one line in workers.properties syntax", _worker_property, "worker.<name>.<attribute>=<value>"),
        Directive("JkMount", Args.TAKE12, MOUNT_CONTEXT, "map a URI pattern to a worker (inside <Location>, only the worker)", _mount(False), "[URI-pattern] worker[;extension=value...]"),
        Directive("JkUnMount", Args.TAKE12, MOUNT_CONTEXT, "exclude a URI pattern from a worker's mounts (worker * for all)", _mount(True), "[URI-pattern] worker"),
        Directive("JkMountFile", Args.TAKE1, RSRC, "a uriworkermap.properties file of mount rules, reloaded when it changes", _mount_file, "file-path"),
        Directive("JkMountFileReload", Args.TAKE1, RSRC, "seconds between checks of the JkMountFile for changes (0: never)", _mount_file_reload, "seconds", str(DEFAULT_RELOAD)),
        Directive("JkMountCopy", Args.TAKE1, RSRC, "whether a virtual host inherits the main server's mounts (All: every virtual host)", _mount_copy, "On|Off|All", "Off"),
        Directive("JkOptions", Args.TAKE_ARGV, RSRC, "forwarding options (+ForwardURIProxy, +FlushPackets, ...)", _options, "[+|-]option ...", "+ForwardURIProxy"),
        Directive("JkEnvVar", Args.TAKE12, RSRC, "an environment variable forwarded as a request attribute", _env_var, "name [default]"),
        Directive("JkStripSession", Args.TAKE12, RSRC, "remove ;jsessionid from URIs httpd serves itself", _strip_session, "On|Off [name]", "Off"),
        Directive("JkLogFile", Args.TAKE1, RSRC, "mod_jk's log file, or |program for a piped logger", _log_file, "file-path|'|'command", DEFAULT_FILE),
        Directive("JkLogLevel", Args.TAKE1, RSRC, "mod_jk's log level", _log_level, "|".join(LEVELS), DEFAULT_LEVEL),
        Directive("JkLogStampFormat", Args.TAKE1, RSRC, "strftime format of the log's time stamps (%Q ms, %q us)", _stamp_format, "format", DEFAULT_STAMP_FORMAT),
        Directive("JkRequestLogFormat", Args.TAKE1, RSRC, "write one line per forwarded request to the JkLogFile", _request_log_format, "format"),
        Directive("JkShmFile", Args.TAKE1, GLOBAL, "file backing the lb workers' shared state", _shm_file, "file-path|none", "logs/jk-runtime-status"),
        Directive("JkShmSize", Args.TAKE1, GLOBAL, "obsolete: the shared memory size is computed from the workers", _shm_size, "kilobytes"),
        Directive("JkWatchdogInterval", Args.TAKE1, GLOBAL, "seconds between maintenance runs of a background thread (0: on requests)", _watchdog, "seconds", "0"),
        Directive("JkExtractSSL", Args.FLAG, RSRC, "forward the SSL environment to the container", set_flag("extract_ssl"), "On|Off", "On"),
        *(
            Directive(name, Args.TAKE1, RSRC, f"environment variable read instead of {default}", _indicator(name), "name", default)
            for name, (_, default) in INDICATORS.items()
        ),
    )

    def create_server_config(self, server: Server) -> JkServerConfig:
        return JkServerConfig()

    def merge_server_config(self, base: JkServerConfig, add: JkServerConfig) -> JkServerConfig:
        merged = replace(base)
        for name in ("mount_file_reload", "strip_session", "strip_session_name", "log_file", "log_level",
                     "log_stamp_format", "request_log_format", "extract_ssl"):
            value = getattr(add, name)
            if value is not None:
                setattr(merged, name, value)
        merged.indicators = {**(base.indicators or {}), **(add.indicators or {})}
        merged.env_vars = {**(base.env_vars or {}), **(add.env_vars or {})}
        # A virtual host's options apply over the main server's effective ones.
        merged.options_on, merged.options_off = add.options_on, add.options_off
        copy = add.mount_copy if add.mount_copy is not None else bool(base.mount_copy_all)
        merged.mount_copy = copy
        own = add.mounts or []
        merged.mounts = [*(base.mounts or []), *own] if copy else own
        merged.mount_file = add.mount_file or (base.mount_file if copy else None)
        return merged

    def register_hooks(self, hooks: Hooks) -> None:
        hooks.register("check_config", self.check_config, module=self.name)
        hooks.register("post_config", self.post_config, module=self.name)
        hooks.register("child_init", self.child_init, module=self.name)
        hooks.register("child_stopping", self.child_stopping, module=self.name)
        hooks.register("translate_name", self.translate_name, FIRST, module=self.name)
        hooks.register("map_to_storage", self.map_to_storage, FIRST, module=self.name)
        hooks.register("handler", self.handler, module=self.name)
        hooks.register("log_transaction", self.log_transaction, module=self.name)

    # -- configuration -------------------------------------------------------------------

    def check_config(self, config: Any) -> int:
        """Read the workers and build every server's URI map; an error names file and line."""
        main = config.main_server
        main_cfg: JkServerConfig = main.module_config[self.name]
        for vhost in config.vhosts:
            if vhost.module_config.get(self.name) is main_cfg:
                vhost.module_config[self.name] = self.merge_server_config(main_cfg, JkServerConfig())
        workers_file = main_cfg.workers_file
        if workers_file is None and os.path.isfile(config.resolve(DEFAULT_WORKERS_FILE)):
            workers_file = config.resolve(DEFAULT_WORKERS_FILE)
        lines = list(main_cfg.worker_properties or [])
        if workers_file is not None:
            try:
                with open(workers_file, encoding="utf-8", errors="replace") as stream:
                    lines += [(workers_file, n, text) for n, text in enumerate(stream.read().splitlines(), 1)]
            except OSError as e:
                raise ConfigError(workers_file, 0, "JkWorkersFile", f"cannot read it: {e.strerror}") from None
        try:
            workers = parse_workers_properties(
                lines, environ=config.environ, threads_per_child=config.global_config.threads_per_child
            )
        except WorkersError as e:
            raise ConfigError(e.file, e.line or 0, "", e.message) from None
        for warning in workers.warnings:
            config.warn(warning)
        defined = set(workers.worker_list)
        shown_file = workers_file or "the JkWorkerProperty lines"
        now = time.time()
        main_eff = _effective_options(DEFAULT_OPTIONS, main_cfg)
        for server in config.servers:
            cfg: JkServerConfig = server.module_config[self.name]
            cfg.effective_options = _effective_options(main_eff, cfg) if server.is_virtual else main_eff
            cfg.indicator_names = {**_INDICATOR_DEFAULTS, **(cfg.indicators or {})}
            mount_file = None
            try:
                if cfg.mount_file:
                    mount_file = MountFile(cfg.mount_file, DEFAULT_RELOAD if cfg.mount_file_reload is None
                                           else cfg.mount_file_reload, config.environ)
                    mount_file.load(now)
                umap = UriWorkerMap(mount_file, "RejectUnsafeURI" in cfg.effective_options)
                for m in cfg.mounts or []:
                    umap.add(("!" if m.unmount else "") + m.pattern, m.worker, source=Source.JKMOUNT,
                             file=m.file, line=m.line)
                if not server.is_virtual or cfg.mount_copy:
                    umap.add_worker_mounts(workers)
                umap.check_workers(defined, shown_file)
            except UriMapError as e:
                raise ConfigError(e.file, e.line or 0, "", e.message) from None
            cfg.uri_map = umap
        state = JkState(shown_file, WorkerRegistry(workers), watchdog_interval=main_cfg.watchdog_interval or 0)
        for server in config.servers:
            server.module_config[self.name].state = state
        return OK

    def post_config(self, config: Any) -> int:
        """Open the JkLogFiles and the JkShmFile (in the master; the children inherit them).

        The previous generation's are closed here: its children hold their own copies.
        """
        main_cfg: JkServerConfig = config.main_server.module_config[self.name]
        state = main_cfg.state
        assert state is not None
        if self.master_state is not None and self.master_state is not state:
            self.master_state.release()
        self.master_state = state
        if main_cfg.log_file is None:
            main_cfg.log_file = config.resolve(DEFAULT_FILE)
            log_error(config.main_server, "warn", self.log_name,
                      f"No JkLogFile defined in httpd.conf. Using default {main_cfg.log_file}")
        for server in config.servers:
            cfg: JkServerConfig = server.module_config[self.name]
            path = cfg.log_file or main_cfg.log_file
            key = f"{path}\0{cfg.log_level or DEFAULT_LEVEL}\0{cfg.log_stamp_format or DEFAULT_STAMP_FORMAT}"
            log = state.logs.get(key)
            if log is None:
                log = JkLog(path, cfg.log_level or DEFAULT_LEVEL, cfg.log_stamp_format or DEFAULT_STAMP_FORMAT)
                try:
                    log.open()
                except OSError as e:
                    log_error(server, "error", self.log_name, f"could not open JkLogFile {path}: {e}")
                state.logs[key] = log
            cfg.log = log
        state.registry.set_log(main_cfg.log)
        registry = state.registry
        if registry.balancers:
            size = max(registry.shm_size, (main_cfg.shm_size or 0) * 1024, MIN_SHM_SIZE)
            if main_cfg.shm_file and main_cfg.shm_file.lower() != "none":
                try:
                    state.shm_file = _open_shm_file(main_cfg.shm_file, size)
                except OSError as e:
                    log_error(config.main_server, "error", self.log_name,
                              f"Initializing shm {main_cfg.shm_file} failed ({e}); the scoreboard "
                              "keeps the load balancing state instead")
            if state.shm_file is None and hasattr(config, "shm_segments"):
                config.shm_segments[SHM_SEGMENT] = size
        if main_cfg.log is not None:
            main_cfg.log.log("info", f"mod_jk initialized with {len(state.registry.all)} workers "
                                     f"from {state.workers_file}", "init_jk")
        return OK

    def child_init(self, config: Any) -> None:
        """Attach the lb workers to the shared state; start the JkWatchdogInterval thread."""
        state: JkState | None = config.main_server.module_config[self.name].state
        if state is None:
            return
        registry = state.registry
        if registry.balancers:
            if state.shm_file is not None:
                mapping, fd = state.shm_file
                registry.attach(memoryview(mapping), SegmentLock(fd, 0))
            elif getattr(config, "scoreboard", None) is not None:
                segment = config.scoreboard.segment(SHM_SEGMENT)
                registry.attach(segment.buf, segment.lock)
        if state.watchdog_interval <= 0:
            return
        state.watchdog = threading.Thread(target=_watchdog_loop, args=(state,), name="jk-watchdog",
                                          daemon=True)
        state.watchdog.start()

    def child_stopping(self, config: Any, graceful: bool) -> None:
        state: JkState | None = config.main_server.module_config[self.name].state
        if state is not None:
            state.stopping = True
            state.registry.close()

    # -- requests ------------------------------------------------------------------------

    def translate_name(self, r: Request) -> int:
        """Map the URI to a worker (mod_jk's jk_translate)."""
        if r.handler == JK_HANDLER:
            return DECLINED  # set by hand (SetHandler); the handler finds the worker
        cfg: JkServerConfig | None = r.server_config(self.name)
        if cfg is None or cfg.uri_map is None or "no-jk" in r.subprocess_env:
            return DECLINED
        try:
            rule = cfg.uri_map.lookup(r.uri, time.time())
        except UriError as e:
            log_rerror(r, "info", self.log_name, f"invalid URI {r.uri!r}: {e}")
            return 400
        if rule is None:
            return DECLINED
        r.handler = JK_HANDLER
        r.notes[NOTE_WORKER_NAME] = rule.worker
        r.request_config[_REQUEST_KEY] = (rule.extensions, r.uri)
        return OK

    def map_to_storage(self, r: Request) -> int:
        """No file behind a mapped URI; for the others, JkStripSession."""
        if NOTE_WORKER_NAME in r.notes:
            r.filename = r.uri.rpartition("/")[2]  # os.path.basename
            return OK
        cfg: JkServerConfig | None = r.server_config(self.name)
        if cfg is not None and cfg.strip_session:
            name = cfg.strip_session_name or SESSION_PATH_PARAMETER
            r.uri = r.uri.split(name, 1)[0]
            if r.filename:
                r.filename = r.filename.split(name, 1)[0]
        return DECLINED

    def handler(self, r: Request) -> int:
        """Forward the request to its worker (mod_jk's jk_handler)."""
        if r.handler != JK_HANDLER:
            return DECLINED
        cfg: JkServerConfig | None = r.server_config(self.name)
        if cfg is None or cfg.state is None or "no-jk" in r.subprocess_env:
            return DECLINED
        extensions, original_uri = r.request_config.get(_REQUEST_KEY, (None, r.uri))
        worker_name = r.notes.get(NOTE_WORKER_NAME)
        if worker_name is None:
            worker_name = r.subprocess_env.get(cfg.indicator("worker"))
            if worker_name and ";" in worker_name:
                try:
                    by_hand = parse_rule("/", worker_name, Source.JKMOUNT)[0]
                except UriMapError as e:
                    log_rerror(r, "error", self.log_name, f"bad worker name {worker_name!r}: {e.message}")
                    return 500
                worker_name, extensions = by_hand.worker, by_hand.extensions
            if worker_name is None and cfg.uri_map is not None:
                try:
                    rule = cfg.uri_map.lookup(r.uri, time.time())
                except UriError:
                    return 400
                if rule is not None:
                    worker_name, extensions = rule.worker, rule.extensions
            if not worker_name:
                return DECLINED
            r.notes[NOTE_WORKER_NAME] = worker_name
        state = cfg.state
        log = cfg.log
        worker = state.registry.get(worker_name)
        if worker is None:
            message = f"Could not find a worker for worker name={worker_name}"
            if log is not None:
                log.log("info", message, "jk_handler")
            log_rerror(r, "error", self.log_name, message)
            return 500
        if r.connection.aborted:
            return OK
        if state.watchdog_interval <= 0:
            state.registry.maintain_due(time.monotonic())
        r.notes[NOTE_WORKER_TYPE] = worker.type
        s = ServiceRequest.build(r, cfg, worker_name, extensions, original_uri)
        result = worker.service(s)
        if s.has_body_left and result.outcome is not Outcome.CLIENT_ERROR:
            try:
                r.discard_body()  # what the container did not read
            except Exception:  # noqa: BLE001 - the client is gone; the response is what matters
                r.keepalive = False
        duration = time.perf_counter() - s.started
        r.notes[NOTE_REQUEST_DURATION] = f"{duration:.6f}"
        if s.route:
            r.notes[NOTE_WORKER_ROUTE] = s.route
        if result.ok:
            if s.response_blocked:
                return s.response_status
            if s.body_bytes == 0 and not r.headers_sent and r.status >= 400 and r.method != "HEAD":
                if log is not None:
                    log.log("info", f"No body with status={r.status} for worker={worker_name}", "jk_handler")
                r.status_line = None
                return r.status
            if not r.headers_sent:
                r.send_headers()
            return OK
        r.status_line = None  # a failed attempt may have left the container's
        if log is not None:
            log.log("error" if result.outcome is not Outcome.CLIENT_ERROR else "info", result.message,
                    "ajp_service")
        if result.outcome is Outcome.CLIENT_ERROR:
            r.keepalive = False
            if result.status == 200 or r.headers_sent:
                r.connection.aborted = True  # the client went away while the response was going out
                return DONE
            return result.status  # 400, 408 or 413 for a body that could not be read
        if r.headers_sent:
            r.connection.aborted = True  # part of the response is out: end it short
            r.keepalive = False
            return DONE
        return result.status

    def log_transaction(self, r: Request) -> int:
        """JkRequestLogFormat: one line per forwarded request in the JkLogFile."""
        worker = r.notes.get(NOTE_WORKER_NAME)
        if worker is None or NOTE_REQUEST_DURATION not in r.notes:
            return DECLINED
        cfg: JkServerConfig | None = r.server_config(self.name)
        if cfg is None or not cfg.request_log_format or cfg.log is None:
            return DECLINED
        cfg.log.request(format_request(cfg.request_log_format, r, worker,
                                       float(r.notes[NOTE_REQUEST_DURATION])))
        return OK


def _effective_options(main: frozenset[str], cfg: JkServerConfig) -> frozenset[str]:
    """A server's options: those it inherits (the defaults, or the main server's for a
    virtual host) with its own + and - on top; its own URI forwarding mode replaces theirs."""
    on, off = cfg.options_on or frozenset(), cfg.options_off or frozenset()
    base = main - set(URI_OPTIONS) if on & set(URI_OPTIONS) else main
    return (base | on) - off


def _open_shm_file(path: str, size: int) -> tuple[mmap.mmap, int]:
    """Map the JkShmFile (created, or grown to ``size``); the children inherit the mapping.

    An existing file of the same layout keeps its state across restarts, as mod_jk's does.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
        return mmap.mmap(fd, size, mmap.MAP_SHARED), fd
    except OSError:
        os.close(fd)
        raise


def _watchdog_loop(state: JkState) -> None:
    while not state.stopping:
        time.sleep(state.watchdog_interval)
        state.registry.maintain_due(time.monotonic())


jk_module = JkModule()
