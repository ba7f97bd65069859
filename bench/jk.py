"""Benchmark: pyhttpd + mod_jk -> Tomcat against Apache httpd + mod_jk -> the same Tomcat.

One Tomcat 10 serves the test webapp (two with --lb, behind an lb worker); both front ends
forward every request to it over AJP13 with the same workers.properties, and wrk loads
each in turn for the same time with the same connections. Prints requests/s and p99
latency of each and the ratios.

    python bench/jk.py [--lb] [--duration 10] [--connections 50] [--threads 2] [--path /status.jsp?code=200]

Needs wrk, Tomcat 10 and Apache httpd with mod_jk (bash .ci/run installs them).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.peers.apache import Apache  # noqa: E402
from tests.peers.tomcat import Tomcat  # noqa: E402
from tests.server import PyHttpd  # noqa: E402

SECRET = "bench-secret"


def workers_properties(ajp_ports: list[int], pool_size: int) -> str:
    """One ajp13 worker "app" per port; with two ports "app" is an lb over node1 and node2."""
    if len(ajp_ports) == 1:
        names = ["app"]
        lines = []
    else:
        names = [f"node{i}" for i in range(1, len(ajp_ports) + 1)]
        lines = ["worker.app.type=lb", f"worker.app.balance_workers={','.join(names)}"]
    for name, port in zip(names, ajp_ports, strict=True):
        lines += [f"worker.{name}.type=ajp13", f"worker.{name}.host=127.0.0.1", f"worker.{name}.port={port}",
                  f"worker.{name}.secret={SECRET}", f"worker.{name}.connection_pool_size={pool_size}"]
    return "worker.list=app\n" + "\n".join(lines) + "\n"


def wrk(url: str, duration: int, connections: int, threads: int) -> tuple[float, float, str]:
    """Requests/s and p99 latency (ms) of one wrk run, and its report."""
    out = subprocess.run(
        ["wrk", "--latency", f"-t{threads}", f"-c{connections}", f"-d{duration}s", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    if "Non-2xx" in out or "Socket errors" in out:
        print(f"warning: errors during the run of {url}:\n{out}", file=sys.stderr)
    return rps, p99, out


def warm_up(url: str, count: int = 200) -> None:
    for _ in range(count):
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--path", default="/status.jsp?code=200", help="page of the test webapp")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2,
                        help="front-end child processes of each server")
    parser.add_argument("--threads-per-child", type=int, default=25)
    parser.add_argument("--lb", action="store_true", help="two Tomcats behind an lb worker")
    args = parser.parse_args()

    per_child = args.threads_per_child
    tomcats = [Tomcat(route=f"node{i}", ajp_secret=SECRET, max_threads=400) for i in range(1, 2 + args.lb)]
    try:
        for tomcat in tomcats:
            tomcat.start()
            warm_up(tomcat.url(args.path.lstrip("/")), 50)
        ports = [tomcat.ajp_port for tomcat in tomcats]
        apache = Apache(
            mpm={"StartServers": args.processes, "ServerLimit": args.processes,
                 "ThreadsPerChild": per_child, "MaxRequestWorkers": args.processes * per_child,
                 "MinSpareThreads": per_child, "MaxSpareThreads": args.processes * per_child,
                 "ThreadLimit": max(per_child, 64)},
            workers_properties=workers_properties(ports, per_child),
            jk_conf="JkMount /* app",
            jk_log_level="error",
        )
        front = PyHttpd(
            "LoadModule jk_module modules/mod_jk\nJkWorkersFile conf/workers.properties\n"
            "JkLogFile logs/mod_jk.log\nJkLogLevel error\nJkMount /* app\n",
            files={"conf/workers.properties": workers_properties(ports, per_child)},
            start_servers=args.processes,
            threads_per_child=per_child,
        )
        results = {}
        with apache, front:
            for name, url in (("Apache httpd + mod_jk", apache.url(args.path)),
                              ("pyhttpd + mod_jk", front.url + args.path)):
                warm_up(url)
                results[name] = wrk(url, args.duration, args.connections, args.threads)
    finally:
        for tomcat in tomcats:
            tomcat.close()
    backend = "an lb worker over two Tomcat 10" if args.lb else "one Tomcat 10"
    print(f"\n{args.connections} connections, {args.duration} s, {args.processes} processes x "
          f"{per_child} threads, GET {args.path} from {backend} over AJP13")
    print(f"{'server':<24}{'requests/s':>12}{'p99 ms':>10}")
    for name, (rps, p99, _) in results.items():
        print(f"{name:<24}{rps:>12.0f}{p99:>10.2f}")
    (ref_rps, ref_p99, _), (our_rps, our_p99, _) = results.values()
    print(f"{'ratio pyhttpd/Apache':<24}{our_rps / ref_rps:>11.2f}x{our_p99 / ref_p99:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
