"""mod_log_config: access logs with LogFormat, CustomLog and TransferLog, in httpd's formats.

A format is compiled once, when the config is read; a log line is one write(2) on a file
opened with O_APPEND, so lines from every child of every generation land whole. With
`BufferedLogs On` (httpd's, Off by default) a child gathers whole lines in memory and
writes them LOG_BUFSIZE bytes at most at a time: when the next line would not fit, once a
second, and when the child stops (lines of a child that is killed are lost). The master
opens the files in post_config and the children inherit them; a restart opens them again
(a rotated file is picked up) while children of the old generation finish their requests
writing to the descriptors they have, so no line is lost across a graceful restart; the
master closes its copies of an old generation's files from its monitor hook.

Format codes are httpd's: %a %A %b %B %C %D %e %f %h %H %i %k %l %L %m %n %o %p %P %q %r
%R %s %t %T %u %U %v %V %X and %%, with the `{argument}`, `<`/`>` (original or final request
of an internal redirect) and status-condition (`%400,501{Referer}i`, `%!200i`) modifiers.
As httpd, %s %U %T %D %r look at the original request and the others at the final one.
Strings are escaped as httpd's ap_escape_logitem: `"` and `\\` get a backslash, control
and non-ASCII bytes become \\xhh (header values are bytes as latin-1, paths UTF-8).
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from pyhttpd.config import Config
from pyhttpd.conftree import ConfigError
from pyhttpd.directive import Args, CmdParms, Context, Directive, DirectiveError, set_flag
from pyhttpd.hooks import Hooks
from pyhttpd.module import OK, Module
from pyhttpd.request import Request
from pyhttpd.server import Server

COMMON = '%h %l %u %t "%r" %>s %b'
COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
PREDEFINED = {"common": COMMON, "combined": COMBINED}
ORIGINAL_BY_DEFAULT = frozenset("sUTDr")
KEEPALIVES_NOTE = "log_config.keepalives"
#: httpd's buffer for BufferedLogs: what one write(2) carries at most, in whole lines.
LOG_BUFSIZE = 4096
#: Seconds between writes of what a child has buffered, so that a quiet server's log keeps up.
BUFFER_FLUSH_INTERVAL = 1.0
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# -- escaping ---------------------------------------------------------------------------

_UNSAFE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _escape_char(m: re.Match[str]) -> str:
    c = m.group(0)
    special = _ESCAPES.get(c)
    if special is not None:
        return special
    code = ord(c)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # a byte kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return "".join(f"\\x{b:02x}" for b in c.encode("utf-8"))


def escape_logitem(value: str) -> str:
    """A string safe to put between quotes in a log line (ap_escape_logitem)."""
    if _UNSAFE.search(value) is None:
        return value
    return _UNSAFE.sub(_escape_char, value)


def escape_path(value: str) -> str:
    """escape_logitem for a decoded path (UTF-8, undecodable bytes kept as surrogates, as
    r.uri and r.filename hold them): its bytes are what gets escaped."""
    if value.isascii():
        return escape_logitem(value)
    return escape_logitem(value.encode("utf-8", "surrogateescape").decode("latin-1"))


# -- format codes -----------------------------------------------------------------------

_clf_cache: tuple[int, str] = (-1, "")


def clf_time(seconds: float) -> str:
    """[10/Oct/2000:13:55:36 -0700], local time (cached for the current second)."""
    global _clf_cache
    whole = int(seconds)
    if _clf_cache[0] == whole:
        return _clf_cache[1]
    t = time.localtime(whole)
    offset = t.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    text = (
        f"[{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        f" {sign}{offset // 60:02d}{offset % 60:02d}]"
    )
    _clf_cache = (whole, text)
    return text


def _time(r: Request, arg: str | None) -> str:
    if not arg:
        return clf_time(r.request_time)
    seconds = r.request_time
    if arg.startswith("end:"):
        seconds, arg = time.time(), arg[4:]
    elif arg.startswith("begin:"):
        arg = arg[6:]
    if arg == "sec":
        return str(int(seconds))
    if arg == "msec":
        return str(int(seconds * 1000))
    if arg == "usec":
        return str(int(seconds * 1_000_000))
    if arg == "msec_frac":
        return f"{int(seconds * 1000) % 1000:03d}"
    if arg == "usec_frac":
        return f"{int(seconds * 1_000_000) % 1_000_000:06d}"
    return escape_logitem(time.strftime(arg, time.localtime(seconds)))


def _elapsed(r: Request, arg: str | None) -> str:
    seconds = time.perf_counter() - r.start
    if arg == "ms":
        return str(int(seconds * 1000))
    if arg == "us":
        return str(int(seconds * 1_000_000))
    return str(int(seconds))


def _port(r: Request, arg: str | None) -> str:
    c = r.connection
    if arg == "local":
        return str(c.local_port)
    if arg == "remote":
        return str(c.remote_port)
    return str(r.server.port or c.local_port)


def _pid(r: Request, arg: str | None) -> str:
    if arg == "tid":
        return str(threading.get_ident())
    if arg == "hextid":
        return f"{threading.get_ident():x}"
    return str(os.getpid())


def _header_out(r: Request, name: str | None) -> str | None:
    assert name is not None
    lname = name.lower()
    if lname == "content-type" and r.content_type:
        value: str | None = r.content_type.split(";", 1)[0].strip()
    elif lname == "set-cookie":
        value = r.headers_out.get_joined(name)
    else:
        value = r.headers_out.get(name)
    return None if value is None else escape_logitem(value)


def _cookie(r: Request, name: str | None) -> str | None:
    for header in r.headers_in.get_all("Cookie"):
        for pair in header.split(";"):
            key, eq, value = pair.strip().partition("=")
            if eq and key == name:
                return escape_logitem(value)
    return None


def _optional(value: object) -> str | None:
    return None if value is None else escape_logitem(str(value))


def _connection_status(r: Request, arg: str | None) -> str:
    """X aborted, + may be kept alive, - will be closed (as far as the request shows)."""
    if r.connection.aborted:
        return "X"
    connection = (r.headers_in.get("Connection") or "").lower()
    if not r.keepalive or "close" in connection or (r.proto_num < 1001 and "keep-alive" not in connection):
        return "-"
    return "+"


def note_keepalives(r: Request) -> int:
    """Remember for %k how many requests the connection carried before this one."""
    r.notes[KEEPALIVES_NOTE] = r.connection.keepalives
    return OK


# Each format code is a Python expression over the request `r` and the code's argument `a`
# (the text in braces, or None), with whether it may be None (logged as "-"). A format
# compiles into one function that evaluates them in turn (see _compile).
CODES: dict[str, tuple[str, bool]] = {
    "a": ("r.connection.remote_ip", False),
    "A": ("r.connection.local_ip", False),
    "b": ('str(r.bytes_sent) if r.bytes_sent else "-"', False),
    "B": ("str(r.bytes_sent)", False),
    "C": ("_cookie(r, a)", True),
    "D": ("str(int((time.perf_counter() - r.start) * 1_000_000))", False),
    "e": ('_optional(r.subprocess_env.get(a or ""))', True),
    "f": ("None if r.filename is None else escape_path(r.filename)", True),
    "h": ("r.connection.remote_ip", False),
    "H": ("escape_logitem(r.protocol)", False),
    "i": ('_optional(r.headers_in.get_joined(a or ""))', True),
    "k": ("str(r.notes.get(KEEPALIVES_NOTE, r.connection.keepalives))", False),
    "l": ('"-"', False),
    "L": ('"-"', False),
    "m": ("escape_logitem(r.method)", False),
    "n": ('_optional(r.notes.get(a or ""))', True),
    "o": ("_header_out(r, a)", True),
    "p": ("_port(r, a)", False),
    "P": ("_pid(r, a)", False),
    "q": ('escape_logitem(f"?{r.args}") if r.args else ""', False),
    "r": ("escape_logitem(r.the_request)", False),
    "R": ("_optional(r.handler)", True),
    "s": ("str(r.status)", False),
    "t": ("clf_time(r.request_time) if a is None else _time(r, a)", False),
    "T": ("_elapsed(r, a)", False),
    "u": ("'-' if r.user is None else escape_logitem(r.user) if r.user else '\"\"'", False),
    "U": ("escape_path(r.uri)", False),
    "v": ("_optional(r.server.server_hostname)", True),
    "V": ("_optional(r.hostname or r.server.server_hostname)", True),
    "X": ("_connection_status(r, a)", False),
}
NEEDS_ARGUMENT = frozenset("Ceino")
# What the expressions of CODES call.
_CODE_NAMES = {
    f.__name__: f
    for f in (
        _connection_status, _cookie, _elapsed, _header_out, _optional, _pid, _port, _time,
        clf_time, escape_logitem, escape_path,
    )
} | {"time": time, "KEEPALIVES_NOTE": KEEPALIVES_NOTE}


@dataclass(frozen=True)
class Item:
    """One %-directive of a format by its letter (or, with `code` None, literal text in `arg`)."""

    code: str | None
    arg: str | None
    original: bool = False
    statuses: frozenset[int] | None = None
    negate: bool = False


class LogFormat:
    """A compiled LogFormat string; `render(r)` is the line without its newline."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items = tuple(_parse(text))
        self.render: Callable[[Request], str] = _compile(self.items)

    def __repr__(self) -> str:
        return f"<LogFormat {self.text!r}>"


def _compile(items: tuple[Item, ...]) -> Callable[[Request], str]:
    """One function for a whole format: no per-item dispatch at log time, which matters as
    it runs for every request. Literals and arguments enter the source through repr()."""
    lines = ["def render(final):"]
    if any(item.original for item in items if item.code is not None):
        lines += ["    original = final", "    while original.prev is not None:", "        original = original.prev"]
    parts = []
    bound = None  # the request `r` names at this point of the function
    for i, item in enumerate(items):
        if item.code is None:
            parts.append(repr(item.arg))
            continue
        expression, optional = CODES[item.code]
        request = "original" if item.original else "final"
        if request != bound:
            lines.append(f"    r = {request}")
            bound = request
        if "a" in compile(expression, "<format code>", "eval").co_names:
            lines.append(f"    a = {item.arg!r}")
        if item.statuses is not None:
            # %400,501{...}i logs only for these statuses, %!200i for all others.
            statuses = "{" + ", ".join(str(status) for status in sorted(item.statuses)) + "}"
            lines.append(f"    if (r.status in {statuses}) == {item.negate!r}:")
            lines.append(f'        v{i} = "-"')
            lines.append("    else:")
            lines.append(f"        v{i} = {expression}")
        else:
            lines.append(f"    v{i} = {expression}")
        if optional:
            lines.append(f"    if v{i} is None:")
            lines.append(f'        v{i} = "-"')
        parts.append(f"v{i}")
    lines.append(f"    return \"\".join(({', '.join(parts)},))" if parts else "    return ''")
    namespace = dict(_CODE_NAMES)
    exec("\n".join(lines), namespace)  # noqa: S102 - our own expressions, repr() of config text
    return namespace["render"]


_LITERAL_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}


def _parse(text: str) -> list[Item]:
    """Items of a format; DirectiveError names an unknown or malformed directive."""
    items: list[Item] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            literal.append(_LITERAL_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
            continue
        if c != "%":
            literal.append(c)
            i += 1
            continue
        i += 1
        if i < n and text[i] == "%":
            literal.append("%")
            i += 1
            continue
        original: bool | None = None
        statuses: set[int] | None = None
        negate = False
        arg = None
        while i < n:
            c = text[i]
            if c == "<":
                original = True
            elif c == ">":
                original = False
            elif c == "!":
                negate = True
            elif c.isdigit() or c == ",":
                j = i
                while j < n and (text[j].isdigit() or text[j] == ","):
                    j += 1
                statuses = (statuses or set()) | {int(s) for s in text[i:j].split(",") if s}
                i = j
                continue
            elif c == "{":
                end = text.find("}", i)
                if end < 0:
                    raise DirectiveError(f"missing '}}' in LogFormat directive %{text[i:]}")
                arg = text[i + 1 : end]
                i = end + 1
                continue
            else:
                break
            i += 1
        if i >= n:
            raise DirectiveError("LogFormat string ends in the middle of a % directive")
        letter = text[i]
        i += 1
        if letter not in CODES:
            if letter in "IOS":
                raise DirectiveError(f"LogFormat directive %{letter} needs byte counts on the wire (mod_logio), which pyhttpd does not keep")
            raise DirectiveError(f"Unrecognized LogFormat directive %{letter}")
        if letter in NEEDS_ARGUMENT and not arg:
            raise DirectiveError(f"LogFormat directive %{letter} needs an argument: %{{name}}{letter}")
        if literal:
            items.append(Item(None, "".join(literal)))
            literal = []
        if original is None:
            original = letter in ORIGINAL_BY_DEFAULT
        items.append(Item(letter, arg, original, frozenset(statuses) if statuses else None, negate))
    if literal:
        items.append(Item(None, "".join(literal)))
    return items


# -- files ------------------------------------------------------------------------------


class LogFile:
    """An access log file, appended to with one write(2) per line, or with `buffer` (not
    None: BufferedLogs On) one write(2) per LOG_BUFSIZE bytes of whole lines."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self._closer: weakref.finalize | None = None
        self.buffer: bytearray | None = None

    def open(self) -> LogFile:
        """Open the file (a new descriptor each time: a rotated file is picked up)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if self._closer is not None:
            self._closer()
        self.fd = fd
        # Closed when the generation that opened it is dropped, as httpd's pool cleanup.
        self._closer = weakref.finalize(self, os.close, fd)
        return self

    def write(self, data: bytes) -> None:
        if self.fd is None:
            self.open()
        assert self.fd is not None
        os.write(self.fd, data)

    def buffered_write(self, line: bytes) -> None:
        """Add a line to the buffer, writing what it holds first when the line does not fit
        (a line longer than the buffer is written by itself, as httpd does)."""
        buffer = self.buffer
        assert buffer is not None
        if len(buffer) + len(line) > LOG_BUFSIZE:
            self.flush()
            if len(line) > LOG_BUFSIZE:
                self.write(line)
                return
        buffer += line

    def flush(self) -> None:
        """Write the buffered lines."""
        if self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            self.write(data)

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
        self.fd = None

    def __repr__(self) -> str:
        return f"<LogFile {self.path} fd={self.fd}>"


@dataclass
class CustomLog:
    """One CustomLog/TransferLog line: where, what and when."""

    path: str
    format_text: str | None  # a format string or nickname; None: the default format
    env: str | None
    env_negated: bool
    file: str
    line: int
    directive: str
    format: LogFormat | None = None
    log: LogFile | None = None

    def wanted(self, r: Request) -> bool:
        if self.env is None:
            return True
        return (self.env in r.subprocess_env) != self.env_negated


@dataclass
class LogConfigServer:
    """Formats by nickname and the logs of one server (None: the main server's logs)."""

    formats: dict[str, LogFormat] = field(default_factory=dict)
    default_format: LogFormat | None = None
    logs: list[CustomLog] | None = None
    buffered: bool | None = None  # BufferedLogs, in the main server's config


def _log_format(cmd: CmdParms, cfg: LogConfigServer, text: str, nickname: str | None = None) -> None:
    fmt = LogFormat(text)
    if nickname is None:
        cfg.default_format = fmt
    else:
        cfg.formats[nickname] = fmt


def _add_log(cmd: CmdParms, cfg: LogConfigServer, path: str, fmt: str | None, condition: str | None) -> None:
    if path.startswith("|"):
        raise DirectiveError("piped logs are not supported; log to a file")
    env, negated = None, False
    if condition is not None:
        if not condition.startswith("env="):
            raise DirectiveError(f"the condition must be env=[!]VARIABLE, not '{condition}'")
        env = condition[4:]
        negated = env.startswith("!")
        env = env.removeprefix("!")
        if not env:
            raise DirectiveError("env= needs a variable name")
    entry = CustomLog(cmd.resolve(path), fmt, env, negated, cmd.node.file, cmd.node.line, cmd.directive.name)
    cfg.logs = [*(cfg.logs or []), entry]


def _custom_log(cmd: CmdParms, cfg: LogConfigServer, path: str, fmt: str, condition: str | None = None) -> None:
    _add_log(cmd, cfg, path, fmt, condition)


def _transfer_log(cmd: CmdParms, cfg: LogConfigServer, path: str) -> None:
    _add_log(cmd, cfg, path, None, None)


RSRC = Context.RSRC_CONF


class LogConfigModule(Module):
    """httpd's mod_log_config."""

    name = "log_config_module"
    directives = (
        Directive("LogFormat", Args.TAKE12, RSRC, "a log format string and optionally its nickname (common and combined are predefined)", _log_format, "format|nickname [nickname]"),
        Directive("CustomLog", Args.TAKE23, RSRC, "an access log file, its format string or nickname, and optionally env=[!]VAR", _custom_log, "file format|nickname [env=[!]environment-variable]"),
        Directive("TransferLog", Args.TAKE1, RSRC, "an access log file in the default format (the last LogFormat without nickname, else common)", _transfer_log, "file"),
        Directive("BufferedLogs", Args.FLAG, Context.GLOBAL_ONLY, "gather each child's log lines in memory and write them 4 KB at a time (at least once a second and when the child stops)", set_flag("buffered"), "On|Off", "Off"),
    )

    def create_server_config(self, server: Server) -> LogConfigServer:
        return LogConfigServer()

    def merge_server_config(self, base: LogConfigServer, add: LogConfigServer) -> LogConfigServer:
        return LogConfigServer(
            {**base.formats, **add.formats},
            add.default_format or base.default_format,
            add.logs if add.logs is not None else base.logs,
            base.buffered,
        )

    def register_hooks(self, hooks: Hooks) -> None:
        hooks.register("check_config", check_config, module=self.name)
        hooks.register("post_config", open_logs, module=self.name)
        hooks.register("monitor", close_other_generations, module=self.name)
        hooks.register("child_init", start_buffering, module=self.name)
        hooks.register("child_stopped", flush_buffers, module=self.name)
        hooks.register("log_transaction", log_transaction, module=self.name)


def check_config(config: Config) -> int:
    """Give every log its compiled format (a nickname of its server, or a format string)."""
    for server in config.servers:
        conf: LogConfigServer = server.module_config["log_config_module"]
        for entry in conf.logs or ():
            if entry.format is not None:
                continue
            text = entry.format_text
            if text is None:
                entry.format = conf.default_format or LogFormat(COMMON)
            elif text in conf.formats:
                entry.format = conf.formats[text]
            elif text in PREDEFINED:
                entry.format = LogFormat(PREDEFINED[text])
            else:
                try:
                    entry.format = LogFormat(text)
                except DirectiveError as e:
                    raise ConfigError(entry.file, entry.line, entry.directive, str(e)) from None
    # %k needs the connection's count from before the request; noted only if some log wants it.
    formats = [entry.format for server in config.servers for entry in server.module_config["log_config_module"].logs or ()]
    if any(item.code == "k" for fmt in formats if fmt is not None for item in fmt.items):
        config.hooks.register("post_read_request", note_keepalives, module="log_config_module")
    return OK


# The files this process opened for each configuration generation, so that the master can
# close those of generations it no longer runs (as clearing httpd's pconf pool does).
_generations: list[tuple[Config, dict[str, LogFile]]] = []


def open_logs(config: Config) -> int:
    """Open every log file of this generation in the master, before the children fork."""
    opened: dict[str, LogFile] = {}
    _generations.append((config, opened))
    for server in config.servers:
        for entry in server.module_config["log_config_module"].logs or ():
            if entry.path not in opened:
                try:
                    opened[entry.path] = LogFile(entry.path).open()
                except OSError as e:
                    raise ConfigError(
                        entry.file, entry.line, entry.directive,
                        f"could not open transfer log file {entry.path}: {e.strerror}",
                    ) from None
            entry.log = opened[entry.path]
    return OK


def close_other_generations(config: Config) -> int:
    """monitor (master): close the files of every generation but the running one. Children
    of an old generation keep their own descriptors until they exit."""
    for owner, opened in _generations:
        if owner is not config:
            for log in opened.values():
                log.close()
    _generations[:] = [(owner, opened) for owner, opened in _generations if owner is config]
    return OK


def _child_logs(config: Config) -> list[LogFile]:
    logs = {}
    for server in config.servers:
        for entry in server.module_config["log_config_module"].logs or ():
            if entry.log is None:
                entry.log = LogFile(entry.path)
            logs[entry.path] = entry.log
    return list(logs.values())


def start_buffering(config: Config) -> None:
    """child_init: with BufferedLogs On, give this child's logs their buffers and write
    them out once a second from the event loop."""
    if not config.main_server.module_config["log_config_module"].buffered:
        return
    logs = _child_logs(config)
    for log in logs:
        log.buffer = bytearray()
    from gevent import get_hub

    def flush() -> None:
        for log in logs:
            try:
                log.flush()
            except OSError:
                pass  # a full disk: the lines are dropped, as an unbuffered write's would be

    timer = get_hub().loop.timer(BUFFER_FLUSH_INTERVAL, BUFFER_FLUSH_INTERVAL)
    timer.start(flush)
    # Not a reason for the loop to keep running.
    timer.ref = False


def flush_buffers(config: Config) -> None:
    """child_stopped: write what this child still holds."""
    for log in _child_logs(config):
        log.flush()


def log_transaction(r: Request) -> int:
    """Write the request's line to each log of its server."""
    logs = r.server.module_config["log_config_module"].logs
    if logs:
        for entry in logs:
            if entry.env is None or entry.wanted(r):
                assert entry.format is not None
                log = entry.log
                if log is None:
                    log = entry.log = LogFile(entry.path)
                line = (entry.format.render(r) + "\n").encode("utf-8", "backslashreplace")
                if log.buffer is not None:
                    log.buffered_write(line)
                elif log.fd is None:
                    log.write(line)
                else:
                    os.write(log.fd, line)
    return OK


log_config_module = LogConfigModule()
