"""mod_status: what the server is doing right now, from the shared scoreboard.

    LoadModule status_module modules/mod_status
    <Location "/server-status">
        SetHandler server-status
    </Location>

The page is httpd's: versions, generations, uptime and load; with `ExtendedStatus On` (the
default once this module is loaded) the totals, CPU and per-request averages; the busy,
gracefully finishing and idle worker counts; a table of the child processes with their
CPU and memory; the scoreboard letters; with ExtendedStatus the table of worker slots.

Query options, matched anywhere in the query string as httpd does: `auto` gives the
machine-readable `Key: value` text with httpd's keys (monitoring tools that parse Apache's
`?auto` parse this one), `refresh[=N]` adds a `Refresh: N` header, `notable` lists workers
without a table. Other modules add lines through the status_hook(r, flags) hook, writing
with r.write(); flags is a combination of STATUS_SHORT (?auto), STATUS_NOTABLE and
STATUS_EXTENDED.
"""

from __future__ import annotations

import html
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import psutil

from pyhttpd import SERVER_BASEPRODUCT, __version__
from pyhttpd.child import master_pid
from pyhttpd.directive import Args, Context, Directive, set_flag
from pyhttpd.hooks import Hooks
from pyhttpd.log import log_rerror
from pyhttpd.module import DECLINED, OK, Module
from pyhttpd.mpm_limits import derive_limits
from pyhttpd.request import Request
from pyhttpd.scoreboard import (
    SERVER_BUSY_KEEPALIVE,
    SERVER_BUSY_READ,
    SERVER_BUSY_WRITE,
    SERVER_DEAD,
    SERVER_GRACEFUL,
    SERVER_READY,
    ScoreboardSnapshot,
)

HANDLER = "server-status"
STATUS_SHORT = 0x1
STATUS_NOTABLE = 0x2
STATUS_EXTENDED = 0x4
LETTERS_PER_LINE = 64
TIME_FORMAT = "%A, %d-%b-%Y %H:%M:%S %Z"

KEY = (
    ('"_"', "Waiting for Connection"),
    ('"S"', "Starting up"),
    ('"R"', "Reading Request"),
    ('"W"', "Sending Reply"),
    ('"K"', "Keepalive (read)"),
    ('"D"', "DNS Lookup"),
    ('"C"', "Closing connection"),
    ('"L"', "Logging"),
    ('"G"', "Gracefully finishing"),
    ('"I"', "Idle cleanup of worker"),
    ('"."', "Open slot with no current process"),
)


@dataclass
class StatusConfig:
    """ExtendedStatus (None: not set here)."""

    extended: bool | None = None


class StatusModule(Module):
    """httpd's mod_status."""

    name = "status_module"
    directives = (
        Directive("ExtendedStatus", Args.FLAG, Context.GLOBAL_ONLY, "keep track of extended status information for each request", set_flag("extended"), "On|Off", "On"),
    )

    def create_server_config(self, server: Any) -> StatusConfig:
        return StatusConfig()

    def register_hooks(self, hooks: Hooks) -> None:
        hooks.register("handler", handler, module=self.name)


def handler(r: Request) -> int:
    """Serve the status page for `SetHandler server-status`."""
    if r.handler != HANDLER:
        return DECLINED
    if r.method not in ("GET", "HEAD"):
        r.err_headers_out.set("Allow", "GET, HEAD")
        return 405
    board = getattr(r.config, "scoreboard", None)
    if board is None:
        log_rerror(r, "error", "status", "server-status unavailable: this process has no scoreboard")
        return 500
    query = r.args or ""
    flags = STATUS_SHORT if "auto" in query else 0
    if "notable" in query:
        flags |= STATUS_NOTABLE
    conf: StatusConfig = r.config.main_server.module_config.get(status_module.name) or StatusConfig()
    if conf.extended is not False:
        flags |= STATUS_EXTENDED
    refresh = _refresh(query)
    if refresh is not None:
        r.headers_out.set("Refresh", refresh)
    limits, _ = derive_limits(r.config.global_config)
    snapshot = board.snapshot(limits.server_limit, limits.threads_per_child)
    view = _View(r, snapshot)
    if flags & STATUS_SHORT:
        r.content_type = "text/plain; charset=ISO-8859-1"
        r.write(view.auto(flags).encode("latin-1", "replace"))
        r.config.hooks.run_all("status_hook", r, flags)
    else:
        r.content_type = "text/html; charset=ISO-8859-1"
        r.write(view.page(flags).encode("latin-1", "replace"))
        r.config.hooks.run_all("status_hook", r, flags)
        r.write(b"</body></html>\n")
    return OK


def _refresh(query: str) -> str | None:
    at = query.find("refresh")
    if at < 0:
        return None
    rest = query[at + len("refresh") :]
    if rest.startswith("="):
        digits = ""
        for ch in rest[1:]:
            if not ch.isdigit():
                break
            digits += ch
        if digits:
            return str(int(digits) or 10)
    return "1"


def _g(value: float) -> str:
    """C's %g, as httpd prints its rates."""
    return f"{value:g}"


def _uptime_text(seconds: int) -> str:
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f" {count} {unit}{'' if count == 1 else 's'}")
    return "".join(parts)


def _ht_time(seconds: float) -> str:
    return time.strftime(TIME_FORMAT, time.localtime(seconds))


class _View:
    """The figures of one status request, rendered as text or HTML."""

    def __init__(self, r: Request, snapshot: ScoreboardSnapshot) -> None:
        self.r = r
        self.s = snapshot
        self.now = time.time()
        self.uptime = max(0, int(self.now - snapshot["restart_time"]))
        self.server_name = r.hostname or r.server.server_hostname or r.connection.local_ip
        self.version = f"{SERVER_BASEPRODUCT}/{__version__} ({platform.system()})"
        self.processes = {p["pid"]: _process_usage(p["pid"]) for p in snapshot["processes"]}
        self.cpu = _cpu_totals(self.processes.values())
        self.load = os.getloadavg()

    def auto(self, flags: int) -> str:
        s, uptime = self.s, self.uptime
        lines = [
            self.server_name,
            f"ServerVersion: {self.version}",
            "ServerMPM: worker",
            f"Server Built: {_built()}",
            f"CurrentTime: {_ht_time(self.now)}",
            f"RestartTime: {_ht_time(s['restart_time'])}",
            f"ParentServerConfigGeneration: {s['generation'] + 1}",
            f"ParentServerMPMGeneration: {s['generation']}",
            f"ServerUptimeSeconds: {uptime}",
            f"ServerUptime:{_uptime_text(uptime)}",
            f"Load1: {self.load[0]:.2f}",
            f"Load5: {self.load[1]:.2f}",
            f"Load15: {self.load[2]:.2f}",
        ]
        if flags & STATUS_EXTENDED:
            accesses, kbytes = s["total_accesses"], s["total_bytes"] >> 10
            duration_ms = int(s["total_duration"] * 1000)
            user, system, child_user, child_system = self.cpu
            lines += [
                f"Total Accesses: {accesses}",
                f"Total kBytes: {kbytes}",
                f"Total Duration: {duration_ms}",
                f"CPUUser: {_g(user)}",
                f"CPUSystem: {_g(system)}",
                f"CPUChildrenUser: {_g(child_user)}",
                f"CPUChildrenSystem: {_g(child_system)}",
            ]
            total_cpu = sum(self.cpu)
            if total_cpu and uptime:
                lines.append(f"CPULoad: {_g(total_cpu / uptime * 100)}")
            lines.append(f"Uptime: {uptime}")
            if uptime:
                lines.append(f"ReqPerSec: {_g(accesses / uptime)}")
                lines.append(f"BytesPerSec: {_g(s['total_bytes'] / uptime)}")
            if accesses:
                lines.append(f"BytesPerReq: {_g(s['total_bytes'] / accesses)}")
                lines.append(f"DurationPerReq: {_g(duration_ms / accesses)}")
        stopping = sum(1 for p in s["processes"] if p["quiescing"])
        lines += [
            f"BusyWorkers: {s['busy_workers']}",
            f"GracefulWorkers: {s['graceful_workers']}",
            f"IdleWorkers: {s['idle_workers']}",
            f"Processes: {len(s['processes'])}",
            f"Stopping: {stopping}",
            f"Scoreboard: {s['scoreboard']}",
        ]
        return "\n".join(lines) + "\n"

    def page(self, flags: int) -> str:
        s, uptime, e = self.s, self.uptime, html.escape
        local_ip = self.r.connection.local_ip
        out = [
            '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html><head>\n',
            f"<title>{SERVER_BASEPRODUCT} Status</title>\n</head><body>\n",
            f"<h1>{SERVER_BASEPRODUCT} Server Status for {e(self.server_name)} (via {e(local_ip)})</h1>\n\n",
            f"<dl><dt>Server Version: {e(self.version)}</dt>\n",
            "<dt>Server MPM: worker (gevent children)</dt>\n",
            f"<dt>Server Built: {e(_built())}\n</dt></dl><hr /><dl>\n",
            f"<dt>Current Time: {_ht_time(self.now)}</dt>\n",
            f"<dt>Restart Time: {_ht_time(s['restart_time'])}</dt>\n",
            f"<dt>Parent Server Config. Generation: {s['generation'] + 1}</dt>\n",
            f"<dt>Parent Server MPM Generation: {s['generation']}</dt>\n",
            f"<dt>Server uptime: {_uptime_text(uptime)}</dt>\n",
            f"<dt>Server load: {self.load[0]:.2f} {self.load[1]:.2f} {self.load[2]:.2f}</dt>\n",
        ]
        if flags & STATUS_EXTENDED:
            accesses, total = s["total_accesses"], s["total_bytes"]
            duration_ms = int(s["total_duration"] * 1000)
            user, system, child_user, child_system = self.cpu
            out.append(
                f"<dt>Total accesses: {accesses} - Total Traffic: {_size(total)} - "
                f"Total Duration: {duration_ms}</dt>\n"
            )
            load = f" - {_g(sum(self.cpu) / uptime * 100)}% CPU load" if uptime and sum(self.cpu) else ""
            out.append(
                f"<dt>CPU Usage: u{_g(user)} s{_g(system)} cu{_g(child_user)} cs{_g(child_system)}{load}</dt>\n"
            )
            rates = []
            if uptime:
                rates += [f"{_g(accesses / uptime)} requests/sec", f"{_size(total / uptime)}/second"]
            if accesses:
                rates += [f"{_size(total / accesses)}/request", f"{_g(duration_ms / accesses)} ms/request"]
            if rates:
                out.append(f"<dt>{' - '.join(rates)}</dt>\n")
        out.append(
            f"<dt>{s['busy_workers']} requests currently being processed, "
            f"{s['graceful_workers']} workers gracefully restarting, "
            f"{s['idle_workers']} idle workers</dt>\n</dl>\n"
        )
        out.append(self._process_table())
        out.append("<pre>")
        letters = s["scoreboard"]
        for i in range(0, len(letters), LETTERS_PER_LINE):
            out.append(letters[i : i + LETTERS_PER_LINE] + "\n")
        out.append("</pre>\n<p>Scoreboard Key:<br />\n")
        out.append(",\n".join(f"<b><code>{k}</code></b> {v}" for k, v in KEY) + "</p>\n")
        if not flags & STATUS_EXTENDED:
            out.append(self._pid_key())
            out.append("<p>To obtain a full report with current status information you need to use the <code>ExtendedStatus On</code> directive.</p>\n")
        elif flags & STATUS_NOTABLE:
            out.append(self._worker_list())
        else:
            out.append(self._worker_table())
        return "".join(out)

    def _process_table(self) -> str:
        rows = []
        counts: dict[int, list[int]] = {}
        for w in self.s["workers"]:
            c = counts.setdefault(w["slot"], [0, 0, 0])
            if w["status"] == SERVER_READY:
                c[1] += 1
            elif w["status"] == SERVER_GRACEFUL:
                c[2] += 1
            elif w["status"] != SERVER_DEAD:
                c[0] += 1
        for p in self.s["processes"]:
            busy, idle, graceful = counts.get(p["slot"], [0, 0, 0])
            usage = self.processes.get(p["pid"])
            cpu = f"{_g(round(usage.cpu_percent, 1))}" if usage else "-"
            rss = f"{usage.rss / 1048576:.1f}" if usage else "-"
            rows.append(
                f"<tr><td>{p['slot']}</td><td>{p['pid']}</td><td>{p['generation']}</td>"
                f"<td>{'yes' if p['quiescing'] else 'no'}</td><td>{p['connections']}</td>"
                f"<td>{busy}</td><td>{graceful}</td><td>{idle}</td><td>{cpu}</td><td>{rss}</td></tr>\n"
            )
        return (
            "<table rules=\"all\" cellpadding=\"1%\">\n"
            "<tr><th rowspan=\"2\">Slot</th><th rowspan=\"2\">PID</th><th rowspan=\"2\">Generation</th>"
            "<th rowspan=\"2\">Stopping</th><th rowspan=\"2\">Connections<br />total</th>"
            "<th colspan=\"3\">Threads</th><th colspan=\"2\">Process</th></tr>\n"
            "<tr><th>busy</th><th>graceful</th><th>idle</th><th>CPU %</th><th>RSS MB</th></tr>\n"
            + "".join(rows)
            + "</table>\n"
        )

    def _pid_key(self) -> str:
        lines = []
        for w in self.s["workers"]:
            if w["status"] not in (SERVER_DEAD, SERVER_READY):
                lines.append(f"   {w['pid']} in state: {w['status']} \n")
        return f"<p>PID Key: <br />\n<pre>\n{''.join(lines)}</pre></p>\n" if lines else ""

    def _shown(self) -> list[Any]:
        # Slots that never served and are idle or dead tell nothing; httpd skips them too.
        return [
            w for w in self.s["workers"]
            if w["access_count"] or w["status"] not in (SERVER_DEAD, SERVER_READY)
        ]

    def _worker_row(self, w: Any) -> list[str]:
        e = html.escape
        usage = self.processes.get(w["pid"])
        cpu = _g(round(usage.cpu_seconds, 2)) if usage else "0"
        since = int(self.now - w["last_used"]) if w["last_used"] else 0
        busy = w["status"] in (SERVER_BUSY_READ, SERVER_BUSY_WRITE, SERVER_BUSY_KEEPALIVE)
        req_ms = 0 if busy or w["stop_time"] < w["start_time"] else int((w["stop_time"] - w["start_time"]) * 1000)
        return [
            f"{w['slot']}-{w['generation']}",
            str(w["pid"] or "-"),
            f"{w['conn_count']}/{w['my_access_count']}/{w['access_count']}",
            f"<b>{e(w['status'])}</b>",
            cpu,
            str(since),
            str(req_ms),
            str(int(w["duration"] * 1000)),
            f"{w['conn_bytes'] / 1024:.1f}",
            f"{w['my_bytes_served'] / 1048576:.2f}",
            f"{w['bytes_served'] / 1048576:.2f}",
            e(w["client"]),
            e(w["protocol"]),
            f"<font size=\"-2\">{e(w['vhost'])}</font>",
            e(w["request"]),
        ]

    def _worker_table(self) -> str:
        head = "Srv PID Acc M CPU SS Req Dur Conn Child Slot Client Protocol VHost Request".split()
        out = ["\n\n<table border=\"0\"><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>\n\n"]
        for w in self._shown():
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in self._worker_row(w)) + "</tr>\n")
        out.append(
            "</table>\n <hr /> <table>\n"
            "<tr><th>Srv</th><td>Child Server number - generation</td></tr>\n"
            "<tr><th>PID</th><td>OS process ID</td></tr>\n"
            "<tr><th>Acc</th><td>Number of accesses this connection / this child / this slot</td></tr>\n"
            "<tr><th>M</th><td>Mode of operation</td></tr>\n"
            "<tr><th>CPU</th><td>CPU usage of the child, number of seconds</td></tr>\n"
            "<tr><th>SS</th><td>Seconds since beginning of most recent request</td></tr>\n"
            "<tr><th>Req</th><td>Milliseconds required to process most recent request</td></tr>\n"
            "<tr><th>Dur</th><td>Sum of milliseconds required to process all requests</td></tr>\n"
            "<tr><th>Conn</th><td>Kilobytes transferred this connection</td></tr>\n"
            "<tr><th>Child</th><td>Megabytes transferred this child</td></tr>\n"
            "<tr><th>Slot</th><td>Total megabytes transferred this slot</td></tr>\n"
            "</table>\n"
        )
        return "".join(out)

    def _worker_list(self) -> str:
        out = []
        for w in self._shown():
            cells = self._worker_row(w)
            out.append(
                f"<p><b>Server {cells[0]}</b> ({cells[1]}): {cells[2]} [{cells[3]}] "
                f"u{cells[4]} {cells[5]} secs ago, {cells[6]} ms, {cells[11]} {cells[12]} "
                f"{cells[13]} <i>{cells[14]}</i></p>\n"
            )
        return "".join(out)


@dataclass
class _Usage:
    cpu_seconds: float
    cpu_percent: float  # averaged over the process's life
    rss: int
    times: Any


def _process_usage(pid: int) -> _Usage | None:
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            times = process.cpu_times()
            rss = process.memory_info().rss
            age = max(time.time() - process.create_time(), 1e-3)
    except psutil.Error:
        return None
    seconds = times.user + times.system
    return _Usage(seconds, seconds / age * 100, rss, times)


def _cpu_totals(children: Any) -> tuple[float, float, float, float]:
    """user, system of every child and the master; children user, system (reaped ones)."""
    user = system = 0.0
    for usage in children:
        if usage is not None:
            user += usage.times.user
            system += usage.times.system
    child_user = child_system = 0.0
    try:
        master = psutil.Process(master_pid() or os.getpid()).cpu_times()
        user += master.user
        system += master.system
        child_user, child_system = master.children_user, master.children_system
    except psutil.Error:
        pass
    return user, system, child_user, child_system


def _size(n: float) -> str:
    if n < 1024:
        return f"{int(n)} B"
    if n < 1048576:
        return f"{n / 1024:.1f} kB"
    if n < 1073741824:
        return f"{n / 1048576:.1f} MB"
    return f"{n / 1073741824:.1f} GB"


def _built() -> str:
    import pyhttpd

    return time.strftime("%b %d %Y %H:%M:%S", time.localtime(os.path.getmtime(pyhttpd.__file__)))


status_module = StatusModule()
