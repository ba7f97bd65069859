"""The error log (ErrorLog, LogLevel) in httpd 2.4's line format.

    [Wed Nov 25 16:44:09.123456 2026] [jk:error] [pid 1234] [client 127.0.0.1:5555] message

Files are opened with O_APPEND and every line is one write(2), so lines from all children
of all generations interleave whole. The master opens the files; children inherit them.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

from pyhttpd.core import LOG_LEVELS

if TYPE_CHECKING:
    from pyhttpd.request import Request
    from pyhttpd.server import Server

LEVEL_NUMBER = {name: i for i, name in enumerate(LOG_LEVELS)}


class ErrorLog:
    """One error log file with its levels."""

    def __init__(self, path: str | None, level: str = "warn", module_levels: dict[str, str] | None = None) -> None:
        self.path = path  # None: standard error
        self.level = LEVEL_NUMBER[level]
        self.module_levels = {m: LEVEL_NUMBER[lv] for m, lv in (module_levels or {}).items()}
        self.fd = 2
        self.open()

    def open(self) -> None:
        """Open (or reopen, after a restart or log rotation) the file."""
        if self.path is None or self.path in ("/dev/stderr", "stderr"):
            self.fd = 2
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        old, self.fd = self.fd, fd
        if old > 2:
            os.close(old)

    def close(self) -> None:
        if self.fd > 2:
            os.close(self.fd)
            self.fd = 2

    def enabled(self, level: str, module: str = "core") -> bool:
        """Whether a message of `level` from `module` would be written."""
        return LEVEL_NUMBER[level] <= self.module_levels.get(module, self.level)

    def log(self, level: str, module: str, message: str, client: str | None = None) -> None:
        """Write one line if `level` is enabled for `module`."""
        if LEVEL_NUMBER[level] > self.module_levels.get(module, self.level):
            return
        self.write(format_line(level, module, message, client))

    def write(self, line: str) -> None:
        data = line.encode("utf-8", "backslashreplace")
        try:
            os.write(self.fd, data)
        except OSError:
            if self.fd != 2:
                os.write(2, data)


def format_line(level: str, module: str, message: str, client: str | None = None) -> str:
    now = time.time()
    stamp = time.strftime("%a %b %d %H:%M:%S", time.localtime(now))
    micro = int((now % 1) * 1_000_000)
    year = time.strftime("%Y", time.localtime(now))
    where = f" [client {client}]" if client else ""
    text = message.replace("\n", "\n    ")
    return f"[{stamp}.{micro:06d} {year}] [{module}:{level}] [pid {os.getpid()}]{where} {text}\n"


_stderr_log = ErrorLog(None, "notice")


def server_log(server: Server | None) -> ErrorLog:
    """The error log of a server (its ErrorLog, or the main server's); stderr before config."""
    if server is None:
        return _stderr_log
    log = getattr(server, "error_log", None)
    if log is None and server.config is not None:
        log = getattr(server.config.main_server, "error_log", None)
    return log or _stderr_log


def log_error(server: Server | None, level: str, module: str, message: str) -> None:
    """Log a message for a server (ap_log_error)."""
    server_log(server).log(level, module, message)


def log_rerror(r: Request, level: str, module: str, message: str) -> None:
    """Log a message about a request, naming its client (ap_log_rerror)."""
    c = r.connection
    server_log(r.server).log(level, module, message, f"{c.remote_ip}:{c.remote_port}")


def open_error_logs(servers: list[Server]) -> None:
    """Open every server's ErrorLog; a vhost without its own shares the main server's."""
    opened: dict[str, ErrorLog] = {}
    for server in servers:
        core = server.core
        path = core.error_log
        if path is None:
            server.error_log = None  # type: ignore[attr-defined]
            continue
        target = None if path in ("stderr", "/dev/stderr") else server.config.resolve(path)
        key = target or "stderr"
        if key not in opened:
            opened[key] = ErrorLog(target, core.log_level or "warn", core.module_log_levels)
        server.error_log = opened[key]  # type: ignore[attr-defined]


def stderr_log() -> ErrorLog:
    """The log used before any configuration is read."""
    return _stderr_log


def emergency(message: str) -> None:
    """A line on standard error when nothing else can be done."""
    sys.stderr.write(format_line("emerg", "core", message))
