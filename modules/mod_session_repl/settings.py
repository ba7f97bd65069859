"""What the mod_session_repl directives say, as plain values.

``SessionReplConfig`` is the module's per-server config (fields left None inherit
when a virtual host is merged over the main server).  ``ClusterSettings`` is the
node-wide part the session agent runs with, resolved to its defaults; it is
built once from the main server's config.  Parsing here is pure: the
directives in :mod:`.module` turn ValueError into file:line errors.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .session import DEFAULT_MAX_INACTIVE
from .session_id import COOKIE_NAME
from .wire import MIN_SECRET_LEN

REPLICATION_KINDS = ("delta", "backup", "off")
REPLICATION_MODES = ("sync", "async")
SAME_SITE = ("Strict", "Lax", "None")
DEFAULT_TRANSFER_TIMEOUT = 60.0
ACK_TIMEOUT = 3.0  # how long a sync commit waits for a member: Tribes' sender timeout
DEFAULT_AGENT_SOCKET = "logs/session_agent.sock"
DEFAULT_MULTICAST = ("228.0.0.4", 45564)  # Tomcat's McastService default
CLUSTER_NAME = "pyhttpd"

Address = tuple[str, int]


@dataclass
class SessionReplConfig:
    """Per-server settings; the cluster settings are only read from the main server.

    ``where`` remembers the file and line of each directive used, so checks that
    look at several directives at once can still point at one of them.
    """

    cookie_name: str | None = None
    cookie_path: str | None = None
    cookie_secure: bool | None = None
    cookie_same_site: str | None = None
    max_inactive: int | None = None
    route: str | None = None
    route_rebind: bool | None = None
    replication: str | None = None
    replication_mode: str | None = None
    cluster_listen: Address | None = None
    cluster_members: list[Address] | None = None
    cluster_multicast: Address | None = None
    cluster_secret: bytes | None = None
    state_transfer_timeout: float | None = None
    store_url: str | None = None
    agent_socket: str | None = None
    agent_nice: int | None = None
    where: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def effective_cookie_name(self) -> str:
        """The session cookie's name (default JSESSIONID)."""
        return self.cookie_name or COOKIE_NAME

    @property
    def effective_max_inactive(self) -> int:
        """Seconds a session may stay idle (default 1800)."""
        return DEFAULT_MAX_INACTIVE if self.max_inactive is None else self.max_inactive

    @property
    def uses_redis(self) -> bool:
        """Whether sessions live in Redis rather than in the node's session agent."""
        return self.store_url is not None


@dataclass(frozen=True)
class ClusterSettings:
    """Everything one node's session agent needs, with defaults applied."""

    route: str | None
    replication: str
    sync: bool
    route_rebind: bool
    listen: Address | None
    members: tuple[Address, ...]
    multicast: Address | None
    secret: bytes | None
    state_transfer_timeout: float
    max_inactive: int
    agent_socket: str
    agent_nice: int | None = None  # SessionAgentNice; None: the master's

    @property
    def member_id(self) -> str:
        """This node's id in the cluster: its route (a single node needs none)."""
        return self.route or "local"

    @property
    def clustered(self) -> bool:
        """Whether this node talks to other nodes at all."""
        return self.listen is not None and self.replication != "off"

    @classmethod
    def from_config(cls, cfg: SessionReplConfig, resolve: Callable[[str], str]) -> ClusterSettings:
        """The settings of *cfg* (the main server's); *resolve* makes paths ServerRoot-relative."""
        listen = cfg.cluster_listen
        members = tuple(m for m in (cfg.cluster_members or ()) if m != listen)
        return cls(
            route=cfg.route,
            replication=cfg.replication or ("delta" if listen else "off"),
            sync=(cfg.replication_mode or "sync") == "sync",
            route_rebind=True if cfg.route_rebind is None else cfg.route_rebind,
            listen=listen,
            members=members,
            multicast=cfg.cluster_multicast,
            secret=cfg.cluster_secret,
            state_transfer_timeout=(
                DEFAULT_TRANSFER_TIMEOUT
                if cfg.state_transfer_timeout is None
                else cfg.state_transfer_timeout
            ),
            max_inactive=cfg.effective_max_inactive,
            agent_socket=resolve(cfg.agent_socket or DEFAULT_AGENT_SOCKET),
            agent_nice=cfg.agent_nice,
        )


def parse_address(text: str, *, default_host: str | None = None) -> Address:
    """``host:port`` (``[v6]:port``) as a tuple; ValueError with the reason otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        if default_host is None:
            raise ValueError(f"'{text}' is not host:port")
        host, port_text = default_host, text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError(f"'{text}' has no host")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"'{text}' has no valid port (1-65535)")
    return host, int(port_text)


def format_address(address: Address) -> str:
    """``host:port`` (brackets around an IPv6 host)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_multicast(text: str) -> Address:
    """A multicast group and port (224.0.0.0/4); ValueError otherwise."""
    group, port = parse_address(text, default_host=DEFAULT_MULTICAST[0])
    octets = group.split(".")
    if len(octets) != 4 or not all(o.isdigit() for o in octets) or not 224 <= int(octets[0]) <= 239:
        raise ValueError(f"'{group}' is not an IPv4 multicast group (224.0.0.0 to 239.255.255.255)")
    return group, port


def check_secret(secret: bytes, source: str) -> bytes:
    """*secret* if long enough for HMAC-SHA256; ValueError naming *source* otherwise."""
    if len(secret) < MIN_SECRET_LEN:
        raise ValueError(
            f"{source} is {len(secret)} bytes; use at least {MIN_SECRET_LEN} random bytes "
            "(for example: openssl rand -hex 32)"
        )
    return secret


def read_secret_file(path: str) -> bytes:
    """The secret in *path* (surrounding whitespace removed).

    Refuses a file that other users may read or write, since anyone with the
    secret can feed the cluster sessions.
    """
    try:
        info = os.stat(path)
        with open(path, "rb") as f:
            secret = f.read().strip()
    except OSError as exc:
        raise ValueError(f"cannot read '{path}': {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(
            f"'{path}' is accessible by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            "chmod 600 it"
        )
    return check_secret(secret, f"the secret in '{path}'")


def parse_store_url(text: str) -> str:
    """A ``redis://host:port/db`` URL, checked; ValueError otherwise."""
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"'{text}' is not a redis:// URL (the only external store)")
    if not parts.hostname:
        raise ValueError(f"'{text}' names no host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"'{text}' has an invalid port") from None
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ValueError(f"'{text}': the database after '/' must be a number")
    return text
