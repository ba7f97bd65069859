"""mod_jk's own log (JkLogFile, JkLogLevel, JkLogStampFormat) and its request log
(JkRequestLogFormat).

Lines look like mod_jk's::

    [Tue Jul 26 09:02:00.537 2011] [1276:140021] [info] ajp_service: (node1) ...

The file is opened in the master (or a piped logger started there, for a value that begins
with ``|``) and inherited by the children; each line is one write(2) on an O_APPEND
descriptor, so lines from every child stay whole.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyhttpd.request import Request

LEVELS = ("trace", "debug", "info", "warn", "error", "emerg")
"""mod_jk's log levels, the most verbose first."""
DEFAULT_LEVEL = "info"
DEFAULT_FILE = "logs/mod_jk.log"
DEFAULT_STAMP_FORMAT = "[%a %b %d %H:%M:%S.%Q %Y] "
REQUEST_FORMAT_CODES = "bBHmpqrsTUvVwR"
"""The JkRequestLogFormat codes; %% is a literal %."""


class JkLog:
    """One JkLogFile with its level and time stamp format."""

    def __init__(self, path: str, level: str = DEFAULT_LEVEL,
                 stamp_format: str = DEFAULT_STAMP_FORMAT) -> None:
        self.path = path
        self.level = LEVELS.index(level)
        self.stamp_format = stamp_format
        self.fd = -1
        self.pipe: subprocess.Popen[bytes] | None = None

    def open(self) -> None:
        """Open the file (or start the piped logger); raises OSError."""
        if self.path.startswith("|"):
            self.pipe = subprocess.Popen(self.path[1:], shell=True, stdin=subprocess.PIPE)
            assert self.pipe.stdin is not None
            self.fd = self.pipe.stdin.fileno()
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def close(self) -> None:
        if self.pipe is not None:
            assert self.pipe.stdin is not None
            self.pipe.stdin.close()
            self.pipe = None
        elif self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    def enabled(self, level: str) -> bool:
        """Whether a message of ``level`` is written."""
        return LEVELS.index(level) >= self.level

    def log(self, level: str, message: str, where: str = "") -> None:
        """Write one message if ``level`` is enabled."""
        if LEVELS.index(level) < self.level:
            return
        prefix = f"{where}: " if where else ""
        self.write(f"{self.stamp()}[{os.getpid()}:{threading.get_ident() % 1000000}] "
                   f"[{level}] {prefix}{message}\n")

    def request(self, line: str) -> None:
        """Write a JkRequestLogFormat line, whatever the level."""
        self.write(f"{self.stamp()}{line}\n")

    def stamp(self) -> str:
        now = time.time()
        fraction = now % 1
        text = self.stamp_format.replace("%Q", f"{int(fraction * 1000):03d}")
        text = text.replace("%q", f"{int(fraction * 1000000):06d}")
        return time.strftime(text, time.localtime(now))

    def write(self, line: str) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, line.encode("utf-8", "backslashreplace"))
        except OSError:
            pass  # a full disk or a dead piped logger must not fail requests


def check_request_format(fmt: str) -> str | None:
    """An error message for an unknown code in a JkRequestLogFormat, else None."""
    i = 0
    while (i := fmt.find("%", i)) >= 0:
        code = fmt[i + 1 : i + 2]
        if code != "%" and code not in REQUEST_FORMAT_CODES:
            return f"unknown format code '%{code}' (known: %{', %'.join(REQUEST_FORMAT_CODES)}, %%)"
        i += 2
    return None


def format_request(fmt: str, r: Request, worker: str, duration: float) -> str:
    """One JkRequestLogFormat line for a request ``worker`` served in ``duration`` seconds."""
    out: list[str] = []
    i = 0
    while True:
        j = fmt.find("%", i)
        if j < 0 or j + 1 >= len(fmt):
            out.append(fmt[i:])
            return "".join(out)
        out.append(fmt[i:j])
        out.append(_expand(fmt[j + 1], r, worker, duration))
        i = j + 2


def _expand(code: str, r: Request, worker: str, duration: float) -> str:
    if code == "b":
        return str(r.bytes_sent) if r.bytes_sent else "-"
    if code == "B":
        return str(r.bytes_sent)
    if code == "H":
        return r.protocol
    if code == "m":
        return r.method
    if code == "p":
        return str(r.server.port or r.connection.local_port)
    if code == "q":
        return f"?{r.args}" if r.args else ""
    if code == "r":
        return r.the_request
    if code == "s":
        return str(r.status)
    if code == "T":
        return f"{duration:.6f}"
    if code == "U":
        return r.uri
    if code == "v":
        return r.server.server_hostname or ""
    if code == "V":
        return r.hostname or r.server.server_hostname or ""
    if code == "w":
        return worker
    if code == "R":
        return str(r.notes.get("JK_LB_LAST_NAME") or worker)
    return code  # %%
