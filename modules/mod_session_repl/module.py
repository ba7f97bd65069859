"""mod_session_repl: HTTP sessions for hosted applications, replicated across the cluster.

    LoadModule session_repl_module modules/mod_session_repl
    SessionRoute node1
    ClusterListen 127.0.0.1:4001
    ClusterMember 127.0.0.1:4002
    ClusterMember 127.0.0.1:4003
    ClusterSecretFile conf/cluster.secret

Applications get ``environ['pyhttpd.session']`` (see :mod:`.request_session`):
the post_read_request hook finds the id the request carries, the fixups hook
puts a lazily loaded session in ``r.notes["pyhttpd.session"]`` and in
mod_wsgi's ``r.notes["wsgi_environ"]`` (with ``pyhttpd.route``, this node's
SessionRoute) and wraps the response in the
:mod:`.commit_filter`, and the log_transaction hook, first of all, commits the
session and lets the end of the response out.  One session agent per node
(:mod:`.agent`, a helper process the master supervises) holds the sessions;
``SessionStore redis://...`` keeps them in Redis instead.

``SetHandler session-cluster-status`` serves the cluster's status (``?auto``
for key: value lines, ``?json``); mod_status's page gets the same section
through the status_hook.
"""

from __future__ import annotations

import html
import os
import re
from functools import partial
from typing import TYPE_CHECKING, Any

from pyhttpd.conftree import ConfigError
from pyhttpd.directive import (
    Args,
    CmdParms,
    Context,
    Directive,
    DirectiveError,
    parse_int,
)
from pyhttpd.log import log_error, log_rerror
from pyhttpd.module import DECLINED, OK, REALLY_FIRST, Helper, Module
from pyhttpd.request import Request

from .backend import SessionBackend, SessionStoreUnavailable
from .commit_filter import CommitFilter
from .request_session import RequestSession
from .session_id import is_valid_route, session_id_from_request, strip_path_parameter
from .settings import (
    ACK_TIMEOUT,
    REPLICATION_KINDS,
    REPLICATION_MODES,
    SAME_SITE,
    ClusterSettings,
    SessionReplConfig,
    check_secret,
    parse_address,
    parse_multicast,
    parse_store_url,
    read_secret_file,
)
from .status import render_auto, render_html, render_json, render_page

if TYPE_CHECKING:
    from pyhttpd.config import Config
    from pyhttpd.hooks import Hooks

NAME = "session_repl_module"
LOG_MODULE = "session_repl"
NOTE = "pyhttpd.session"  # environ['pyhttpd.session'] and r.notes["pyhttpd.session"]
ROUTE_NOTE = "pyhttpd.route"  # environ['pyhttpd.route']: this node's SessionRoute
STATUS_HANDLER = "session-cluster-status"
STATUS_SHORT = 0x1  # httpd's AP_STATUS_SHORT: the ?auto variant
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 7230 token
_MAX_SOCKET_PATH = 104  # sun_path, portably


def _remember(cmd: CmdParms, cfg: SessionReplConfig) -> None:
    cfg.where[cmd.directive.name] = (cmd.node.file, cmd.node.line)


def _setter(attr: str, parse: Any) -> Any:
    """A handler storing ``parse(cmd, value)`` in *attr*; ValueError becomes a directive error."""

    def handler(cmd: CmdParms, cfg: SessionReplConfig, value: Any) -> None:
        try:
            setattr(cfg, attr, parse(cmd, value))
        except ValueError as exc:
            raise DirectiveError(str(exc)) from None
        _remember(cmd, cfg)

    return handler


def _cookie_name(cmd: CmdParms, value: str) -> str:
    if not _COOKIE_NAME.fullmatch(value):
        raise ValueError(f"'{value}' is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)")
    return value


def _cookie_path(cmd: CmdParms, value: str) -> str:
    if not value.startswith("/") or any(c in value for c in ';,"\\') or not value.isprintable():
        raise ValueError(f"'{value}' is not a cookie path: it starts with '/' and has no ; , \" or \\")
    return value


def _choice(choices: tuple[str, ...]) -> Any:
    def parse(cmd: CmdParms, value: str) -> str:
        for choice in choices:
            if choice.lower() == value.lower():
                return choice
        raise ValueError(f"'{value}' is not one of {', '.join(choices)}")

    return parse


def _seconds_int(cmd: CmdParms, value: str) -> int:
    try:
        return parse_int(cmd.directive.name, value, -1)
    except DirectiveError as exc:
        raise ValueError(str(exc)) from None


def _positive_seconds(cmd: CmdParms, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"'{value}' must be more than 0 seconds")
    return seconds


def _route(cmd: CmdParms, value: str) -> str:
    if not is_valid_route(value):
        raise ValueError(
            f"'{value}' cannot be a route: use letters, digits, '_' or '-' "
            "(the worker name of this node in the balancer's workers.properties)"
        )
    return value


def _listen(cmd: CmdParms, value: str) -> tuple[str, int]:
    address = parse_address(value)
    if address[0] in ("0.0.0.0", "::", "*"):
        raise ValueError(
            f"'{value}': give the address the other members reach this node at, not a wildcard"
        )
    return address


def _member(cmd: CmdParms, cfg: SessionReplConfig, value: str) -> None:
    try:
        address = parse_address(value)
    except ValueError as exc:
        raise DirectiveError(str(exc)) from None
    members = list(cfg.cluster_members or [])
    if address in members:
        raise DirectiveError(f"member {value} is listed twice")
    cfg.cluster_members = [*members, address]
    _remember(cmd, cfg)


def _secret(cmd: CmdParms, value: str) -> bytes:
    return check_secret(value.encode(), "ClusterSecret")


def _secret_file(cmd: CmdParms, value: str) -> bytes:
    return read_secret_file(cmd.resolve(value))


def _socket_path(cmd: CmdParms, value: str) -> str:
    path = cmd.resolve(value)
    if len(path.encode()) >= _MAX_SOCKET_PATH:
        raise ValueError(f"'{path}' is too long for a Unix socket (under {_MAX_SOCKET_PATH} bytes)")
    return path


def _flag(attr: str) -> Any:
    def handler(cmd: CmdParms, cfg: SessionReplConfig, value: bool) -> None:
        setattr(cfg, attr, value)
        _remember(cmd, cfg)

    return handler


SERVER = Context.RSRC_CONF
GLOBAL = Context.GLOBAL_ONLY

DIRECTIVES = (
    Directive("SessionCookieName", Args.TAKE1, SERVER, "name of the session cookie (also the ;name= path parameter, in lower case)", _setter("cookie_name", _cookie_name), "name", "JSESSIONID"),
    Directive("SessionCookiePath", Args.TAKE1, SERVER, "Path attribute of the session cookie", _setter("cookie_path", _cookie_path), "url-path", "/"),
    Directive("SessionCookieSecure", Args.FLAG, SERVER, "send the session cookie over HTTPS only (default: when the request came over HTTPS)", _flag("cookie_secure"), "On|Off"),
    Directive("SessionCookieSameSite", Args.TAKE1, SERVER, "SameSite attribute of the session cookie", _setter("cookie_same_site", _choice(SAME_SITE)), "Strict|Lax|None", "Lax"),
    Directive("SessionMaxInactive", Args.TAKE1, SERVER, "idle seconds after which a new session expires (0 or -1: never)", _setter("max_inactive", _seconds_int), "seconds", "1800"),
    Directive("SessionRoute", Args.TAKE1, GLOBAL, "this node's route, appended to session ids (Tomcat's jvmRoute; mod_jk's worker name)", _setter("route", _route), "route"),
    Directive("SessionRouteRebind", Args.FLAG, GLOBAL, "give a session that failed over to this node this node's route, so stickiness follows", _flag("route_rebind"), "On|Off", "On"),
    Directive("SessionReplication", Args.TAKE1, GLOBAL, "what the members get: every change (delta), one backup member per session (backup), or nothing (off)", _setter("replication", _choice(REPLICATION_KINDS)), "delta|backup|off", "delta with ClusterListen, else off"),
    Directive("SessionReplicationMode", Args.TAKE1, GLOBAL, "sync: a response completes only once the members applied its session changes; async: at once", _setter("replication_mode", _choice(REPLICATION_MODES)), "sync|async", "sync"),
    Directive("ClusterListen", Args.TAKE1, GLOBAL, "address and port this node's session agent accepts members on", _setter("cluster_listen", _listen), "host:port"),
    Directive("ClusterMember", Args.ITERATE, GLOBAL, "another node's ClusterListen address (repeatable; this node's own is ignored)", _member, "host:port [host:port] ..."),
    Directive("ClusterMulticast", Args.TAKE1, GLOBAL, "find members by multicast heartbeats on this group (TTL 1)", _setter("cluster_multicast", lambda cmd, v: parse_multicast(v)), "group:port", "228.0.0.4:45564"),
    Directive("ClusterSecret", Args.TAKE1, GLOBAL, "shared secret authenticating every cluster frame (HMAC-SHA256; 32 bytes or more)", _setter("cluster_secret", _secret), "secret"),
    Directive("ClusterSecretFile", Args.TAKE1, GLOBAL, "file holding the cluster secret (mode 600)", _setter("cluster_secret", _secret_file), "file-path"),
    Directive("ClusterStateTransferTimeout", Args.TAKE1, GLOBAL, "seconds a starting node waits for the sessions of the others before it serves", _setter("state_transfer_timeout", _positive_seconds), "seconds", "60"),
    Directive("SessionStore", Args.TAKE1, GLOBAL, "keep sessions in Redis instead of the node's session agent", _setter("store_url", lambda cmd, v: parse_store_url(v)), "redis://host:port/db"),
    Directive("SessionAgentSocket", Args.TAKE1, GLOBAL, "Unix socket between the children and the session agent", _setter("agent_socket", _socket_path), "file-path", "logs/session_agent.sock"),
    Directive("SessionAgentNice", Args.TAKE1, GLOBAL, "nice value of the session agent (-20 to 19; below the master's needs root): lower lets it answer every child and member before the children take the CPU again", _setter("agent_nice", lambda cmd, v: parse_int(cmd.directive.name, v, -20, 19)), "nice", "the master's"),
)  # fmt: skip


def _run_agent(settings: ClusterSettings, log: Any) -> None:
    """The session agent helper's body, in its own process (gevent is loaded there only)."""
    from .agent import run_agent

    run_agent(settings, log)


def _config_error(cfg: SessionReplConfig, directive: str, message: str) -> ConfigError:
    file, line = cfg.where.get(directive, ("", 0))
    return ConfigError(file, line, directive, message)


def check_config(config: Config) -> int:
    """Checks that need several directives at once; errors name one of them."""
    main: SessionReplConfig = config.main_server.module_config[NAME]
    if main.cluster_listen is not None:
        if main.store_url is not None:
            raise _config_error(
                main, "SessionStore", "a Redis session store and ClusterListen exclude each other"
            )
        if main.cluster_secret is None:
            raise _config_error(
                main,
                "ClusterListen",
                "needs ClusterSecret or ClusterSecretFile: every frame between members is "
                "authenticated with it",
            )
        if main.route is None:
            raise _config_error(
                main, "ClusterListen", "needs SessionRoute: a node's route is its id in the cluster"
            )
    else:
        for directive in ("ClusterMember", "ClusterMulticast"):
            if directive in main.where:
                raise _config_error(main, directive, "needs ClusterListen on this node")
        if main.replication in ("delta", "backup"):
            raise _config_error(
                main,
                "SessionReplication",
                f"{main.replication} needs ClusterListen and ClusterMember or ClusterMulticast",
            )
    if "ClusterSecret" in main.where and "ClusterSecretFile" in main.where:
        raise _config_error(main, "ClusterSecretFile", "give ClusterSecret or ClusterSecretFile, not both")
    for server in config.servers:
        cfg: SessionReplConfig = server.module_config[NAME]
        if cfg.cookie_same_site == "None" and cfg.cookie_secure is not True:
            raise _config_error(
                cfg,
                "SessionCookieSameSite",
                "None needs SessionCookieSecure On: browsers refuse SameSite=None cookies without Secure",
            )
    return OK


class SessionReplModule(Module):
    """HTTP sessions for hosted applications (see the module docstring)."""

    name = NAME
    directives = DIRECTIVES

    def __init__(self) -> None:
        self._backend: SessionBackend | None = None
        self._backend_of: tuple[Config, int] | None = None  # (configuration, pid)
        self._settings: tuple[Config, ClusterSettings] | None = None
        self._agent_settings: ClusterSettings | None = None
        self._agent_generation = 0

    def create_server_config(self, server: Any) -> SessionReplConfig:
        return SessionReplConfig()

    def merge_server_config(self, base: SessionReplConfig, add: SessionReplConfig) -> SessionReplConfig:
        merged = super().merge_server_config(base, add)
        merged.where = {**base.where, **add.where}
        return merged

    def register_hooks(self, hooks: Hooks) -> None:
        hooks.register("check_config", check_config, module=self.name)
        hooks.register("post_read_request", self.post_read_request, module=self.name)
        hooks.register("fixups", self.fixups, module=self.name)
        hooks.register("handler", self.status_handler, module=self.name)
        hooks.register("log_transaction", self.log_transaction, REALLY_FIRST, module=self.name)
        hooks.register("status_hook", self.status_hook, module=self.name)
        hooks.register("child_init", self.child_init, module=self.name)

    # -- the node: settings, agent, store ------------------------------------------------------

    def settings(self, config: Config) -> ClusterSettings:
        """This node's cluster settings (from the main server's config)."""
        if self._settings is None or self._settings[0] is not config:
            main = config.main_server.module_config[NAME]
            self._settings = (config, ClusterSettings.from_config(main, config.resolve))
        return self._settings[1]

    def helpers(self, config: Config) -> list[Helper]:
        """The node's session agent, unless sessions live in Redis.

        A graceful restart keeps a helper whose name is unchanged, and with it every
        session of a node that has no members.  So the name changes only when the
        cluster settings do: then the new agent starts and refills from the members.
        """
        main: SessionReplConfig = config.main_server.module_config[NAME]
        if main.uses_redis:
            return []
        settings = self.settings(config)
        if self._agent_settings is not None and settings != self._agent_settings:
            self._agent_generation += 1
        self._agent_settings = settings
        name = "session-agent" + (f"-{self._agent_generation}" if self._agent_generation else "")

        def log(level: str, message: str) -> None:
            log_error(config.main_server, level, LOG_MODULE, message)

        return [Helper(name, partial(_run_agent, settings, log))]

    def backend(self, config: Config) -> SessionBackend:
        """This process's way to its node's sessions, made on first use after fork."""
        if self._backend is None or self._backend_of != (config, os.getpid()):
            main: SessionReplConfig = config.main_server.module_config[NAME]
            settings = self.settings(config)
            # Imported here: the master, which only reads the configuration, never loads
            # gevent or redis.
            if main.uses_redis:
                from .redis_store import RedisSessionStore

                self._backend = RedisSessionStore(
                    main.store_url, route=settings.route, route_rebind=settings.route_rebind
                )
            else:
                from .client import AgentClient

                self._backend = AgentClient(
                    settings.agent_socket,
                    timeout=settings.state_transfer_timeout + 2 * ACK_TIMEOUT + 5,
                )
            self._backend_of = (config, os.getpid())
        return self._backend

    def child_init(self, config: Config) -> None:
        self.backend(config)

    # -- per request ---------------------------------------------------------------------------

    def post_read_request(self, r: Request) -> int:
        cfg: SessionReplConfig = r.server_config(NAME)
        name = cfg.effective_cookie_name
        r.request_config[NAME + ".id"] = session_id_from_request(
            r.headers_in.get_joined("Cookie", "; "), r.unparsed_uri, name, name.lower()
        )
        if ";" in r.uri:
            r.uri = strip_path_parameter(r.uri, name.lower())
        return OK

    def fixups(self, r: Request) -> int:
        prev = r.prev
        while prev is not None:  # an internal redirect keeps the session of its request
            session = prev.notes.get(NOTE)
            if session is not None:
                session.adopt(r)
                r.notes[NOTE] = session
                environ = r.notes.setdefault("wsgi_environ", {})
                environ[NOTE] = session
                environ[ROUTE_NOTE] = self.settings(r.config).route
                return OK
            prev = prev.prev
        cfg: SessionReplConfig = r.server_config(NAME)
        settings = self.settings(r.config)
        session = RequestSession(
            r,
            self.backend(r.config),
            cfg,
            route=settings.route,
            requested_id=r.request_config.get(NAME + ".id"),
            sync=settings.sync,
            log=lambda level, message: log_rerror(r, level, LOG_MODULE, message),
        )
        r.notes[NOTE] = session
        environ = r.notes.setdefault("wsgi_environ", {})
        environ[NOTE] = session
        environ[ROUTE_NOTE] = settings.route
        output = CommitFilter(r.transport, session, cfg.effective_cookie_name)
        r.transport = output
        r.request_config[NAME] = output
        return OK

    def log_transaction(self, r: Request) -> int:
        req: Request | None = r
        while req is not None:
            output = req.request_config.get(NAME)
            if output is not None:
                output.finish(r)
                break
            req = req.prev
        return OK

    # -- status --------------------------------------------------------------------------------

    def status_handler(self, r: Request) -> int:
        if r.handler != STATUS_HANDLER:
            return DECLINED
        try:
            status = self.backend(r.config).status()
        except SessionStoreUnavailable as exc:
            log_rerror(r, "error", LOG_MODULE, str(exc))
            return 503
        query = r.args or ""
        if "json" in query:
            body, content_type = render_json(status), "application/json"
        elif "auto" in query:
            body, content_type = render_auto(status), "text/plain; charset=utf-8"
        else:
            body, content_type = render_page(status), "text/html; charset=utf-8"
        data = body.encode()
        r.content_type = content_type
        r.headers_out.set("Content-Length", str(len(data)))
        r.headers_out.set("Cache-Control", "no-cache")
        r.write(data)
        return OK

    def status_hook(self, r: Request, flags: int = 0, *args: Any) -> int:
        """Add the session cluster to mod_status's page (``flags & STATUS_SHORT``: ``?auto``)."""
        try:
            status = self.backend(r.config).status()
        except SessionStoreUnavailable as exc:
            if flags & STATUS_SHORT:
                r.write(f"SessionStoreError: {exc}\n".encode())
            else:
                r.write(f"<h2>Sessions</h2>\n<p>{html.escape(str(exc))}</p>\n".encode())
            return OK
        r.write((render_auto(status) if flags & STATUS_SHORT else render_html(status)).encode())
        return OK


session_repl_module = SessionReplModule()
