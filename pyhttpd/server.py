"""Servers (httpd's server_rec): the main server and its virtual hosts, and choosing one per request."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyhttpd.config import Config
    from pyhttpd.sections import Section, Walker


class Server:
    """The main server or one `<VirtualHost>`; holds every module's per-server config."""

    def __init__(self, config: Config, is_virtual: bool, file: str = "", line: int = 0) -> None:
        self.config = config
        self.is_virtual = is_virtual
        self.file = file
        self.line = line
        self.server_hostname: str | None = None
        self.port = 0
        self.aliases: list[str] = []
        self.addrs: list[tuple[str, int | None]] = []  # <VirtualHost addr[:port] ...>
        self.module_config: dict[str, Any] = {}
        self.lookup_defaults: dict[str, Any] = {}  # per-dir configs outside any section
        self.sections: list[Section] = []
        self.walker: Walker | None = None  # set once the config is complete

    @property
    def core(self) -> Any:
        """The core module's per-server config (DocumentRoot, Timeout, KeepAlive...)."""
        return self.module_config["core"]

    def matches_name(self, host: str) -> bool:
        """Whether a Host header (without port) names this server: ServerName or a ServerAlias."""
        host = host.lower()
        if self.server_hostname and host == self.server_hostname.lower():
            return True
        return any(fnmatch.fnmatchcase(host, alias.lower()) for alias in self.aliases)

    def matches_addr(self, ip: str, port: int) -> bool:
        """Whether a connection to ip:port may be served by this virtual host."""
        for host, vport in self.addrs:
            if vport is not None and vport != port:
                continue
            if host in ("*", "_default_") or host == ip:
                return True
        return False

    def __repr__(self) -> str:
        kind = "vhost" if self.is_virtual else "main"
        return f"<{kind} server {self.server_hostname}:{self.port} {self.file}:{self.line}>"


def select_server(config: Config, local_ip: str, local_port: int, host: str | None) -> Server:
    """Pick the virtual host for a request as httpd does.

    Candidates are the vhosts whose address matches the connection's; among them the one
    whose ServerName or ServerAlias matches the Host header, else the first (the default
    for that address). No candidate at all: the main server.
    """
    cache_key = (local_ip, local_port, host)
    cached = config.vhost_cache.get(cache_key)
    if cached is not None:
        return cached
    candidates = [v for v in config.vhosts if v.matches_addr(local_ip, local_port)]
    exact = [v for v in candidates if any(h == local_ip for h, _ in v.addrs)]
    if exact:
        candidates = exact
    chosen = config.main_server
    if candidates:
        chosen = candidates[0]
        if host:
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            name = name.strip("[]").rstrip(".")
            for v in candidates:
                if v.matches_name(name):
                    chosen = v
                    break
    if len(config.vhost_cache) < 1024:
        config.vhost_cache[cache_key] = chosen
    return chosen
