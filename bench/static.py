"""Benchmark: pyhttpd against Apache httpd serving the same static files.

Both servers run the worker MPM sized alike (2 children x 64 workers, spare limits that keep
exactly two children), keep-alive on, an access log written for every request. wrk loads
each in turn with the same threads, connections and duration, for a 100-byte and a 100 KB
file. Prints requests/s, p50 and p99 latency of each and the pyhttpd/httpd ratios.

    python bench/static.py [--duration 10] [--connections 64] [--threads 2]

Needs wrk and Apache httpd (Debian's wrk and apache2 packages).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.peers.apache import Apache  # noqa: E402
from tests.server import PyHttpd  # noqa: E402

FILES = {"small.bin": 100, "large.bin": 100 * 1024}
MPM = {
    "StartServers": 2,
    "ServerLimit": 2,
    "ThreadLimit": 64,
    "ThreadsPerChild": 64,
    "MaxRequestWorkers": 128,
    "MinSpareThreads": 64,
    "MaxSpareThreads": 192,
    "MaxConnectionsPerChild": 0,
}
PYHTTPD_CONF = (
    "LoadModule log_config_module modules/mod_log_config\n"
    'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" timed\n'
    "CustomLog logs/access_log timed\n"
    "KeepAlive On\nMaxKeepAliveRequests 0\n"
    + "".join(f"{name} {value}\n" for name, value in MPM.items())
)
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, duration: int, connections: int, threads: int) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) of one wrk run; warns about errors on stderr."""
    out = subprocess.run(
        ["wrk", "--latency", f"-t{threads}", f"-c{connections}", f"-d{duration}s", url],
        capture_output=True, text=True, check=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "99"):
        value, unit = re.search(rf"{pct}%\s+([\d.]+)(us|ms|s)\b", out).groups()
        result[f"p{pct}"] = float(value) * UNITS_MS[unit]
    if "Non-2xx" in out or "Socket errors" in out:
        print(f"warning: errors during the run of {url}:\n{out}", file=sys.stderr)
    return result


def warm_up(url: str, count: int = 200) -> None:
    for _ in range(count):
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    contents = {name: os.urandom(size) for name, size in FILES.items()}
    apache = Apache(mpm=MPM)
    (apache.base / "htdocs").mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (apache.base / "htdocs" / name).write_bytes(data)
    pyhttpd = PyHttpd(
        PYHTTPD_CONF,
        files={f"htdocs/{name}": data for name, data in contents.items()},
        start_servers=2,
        threads_per_child=64,
        root=tempfile.mkdtemp(prefix="pyhttpd-bench-"),
    )
    results: dict[tuple[str, str], dict[str, float]] = {}
    with apache, pyhttpd:
        servers = {"pyhttpd": pyhttpd.url, "httpd": apache.url("").rstrip("/")}
        for name in FILES:
            for server, base in servers.items():
                url = f"{base}/{name}"
                warm_up(url)
                results[(name, server)] = wrk(url, args.duration, args.connections, args.threads)

    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, keep-alive, "
          "2 children x 64 workers each, access log on")
    print(f"{'file':<10} {'server':<8} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name in FILES:
        for server in ("pyhttpd", "httpd"):
            r = results[(name, server)]
            print(f"{name:<10} {server:<8} {r['rps']:>10.0f} {r['p50']:>8.2f} {r['p99']:>8.2f}")
        ours, theirs = results[(name, "pyhttpd")], results[(name, "httpd")]
        print(
            f"{name:<10} {'ratio':<8} {ours['rps'] / theirs['rps']:>9.2f}x "
            f"{ours['p50'] / theirs['p50']:>7.2f}x {ours['p99'] / theirs['p99']:>7.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
