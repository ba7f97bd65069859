"""Running wrk and reading its report: requests/s, latency percentiles, errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
#: Seconds a wrk process may run beyond its -d before it is killed.
GRACE = 30
#: A response slower than this counts as a timeout error rather than a latency.
SOCKET_TIMEOUT = "5s"


class WrkError(RuntimeError):
    """wrk is missing, failed, overran its time or printed a report that does not parse."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles (ms) and what went wrong."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int

    @property
    def errors(self) -> int:
        """Socket errors (connect, read, write, timeout) and non-2xx/3xx answers together."""
        return self.socket_errors + self.non_2xx


def _number(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text)
    if match is None:
        raise WrkError(f"no match for {pattern!r} in wrk's report:\n{text}")
    return match


def _latency_ms(percentile: int, text: str) -> float:
    value, unit = _number(rf"\b{percentile}%\s+([\d.]+)(us|ms|s|m)\b", text).groups()
    return float(value) * UNITS_MS[unit]


def parse_wrk(report: str) -> WrkResult:
    """Read the report that ``wrk --latency`` prints."""
    requests, seconds = _number(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", report).groups()[:2]
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    return WrkResult(
        requests=int(requests),
        seconds=float(seconds),
        rps=float(_number(r"Requests/sec:\s+([\d.]+)", report).group(1)),
        p50_ms=_latency_ms(50, report),
        p90_ms=_latency_ms(90, report),
        p99_ms=_latency_ms(99, report),
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def wrk_version() -> str:
    """wrk's version line, e.g. "4.1.0 [epoll]"."""
    if shutil.which("wrk") is None:
        return "not installed"
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[0]
    match = re.search(r"wrk (\S+) (\[\w+\])", first)
    return " ".join(match.groups()) if match else first


def run_wrk(
    url: str,
    *,
    connections: int,
    duration: float,
    threads: int = 2,
    script: str | None = None,
) -> WrkResult:
    """Load ``url`` for ``duration`` seconds over keep-alive ``connections``.

    ``script`` is the text of a Lua script (``wrk -s``). The run is bounded: wrk is
    killed ``GRACE`` seconds after its duration.
    """
    if shutil.which("wrk") is None:
        raise WrkError("wrk is not installed (apt-get install wrk)")
    argv = ["wrk", "--latency", f"--timeout={SOCKET_TIMEOUT}", f"-t{min(threads, connections)}",
            f"-c{connections}", f"-d{max(1, round(duration))}s"]
    with tempfile.TemporaryDirectory(prefix="pyhttpd-wrk-") as tmp:
        if script is not None:
            lua = Path(tmp) / "script.lua"
            lua.write_text(script)
            argv += ["-s", str(lua)]
        try:
            done = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + GRACE)
        except subprocess.TimeoutExpired as error:
            raise WrkError(f"wrk against {url} ran over {duration + GRACE:.0f} s") from error
    if done.returncode != 0:
        raise WrkError(f"wrk against {url} exited with {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout)
