"""Benchmark: a hello-world WSGI application on pyhttpd against gunicorn + gevent, and
pyhttpd nodes against Tomcat nodes behind the same Apache httpd + mod_jk.

1. Over HTTP: pyhttpd (mod_wsgi, N children) and gunicorn (N gevent workers) serve the
   same script; wrk loads each in turn with the same threads, connections and time.
2. With --behind-apache: Apache httpd + mod_jk forwards every request over AJP13 to a
   pyhttpd node (ajp13 listener, the same script) and then to a Tomcat 10 node (a JSP that
   answers as little); wrk loads Apache in each setup.

Prints requests/s and p99 latency of each and the ratios.

    python bench/wsgi.py [--duration 10] [--connections 64] [--threads 2] [--processes 2]
                         [--warmup 3] [--behind-apache]

Needs wrk and gunicorn (`pip install gunicorn`); --behind-apache also needs Apache httpd
with mod_jk and Tomcat 10 (bash .ci/run installs those).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jk import warm_up, wrk  # noqa: E402

from tests.peers.apache import Apache  # noqa: E402
from tests.peers.ports import free_port, wait_for_port  # noqa: E402
from tests.peers.tomcat import Tomcat  # noqa: E402
from tests.server import PyHttpd  # noqa: E402

SECRET = "bench-secret"
HELLO = b"Hello, world!\n"
HELLO_APP = f"""\
BODY = {HELLO!r}
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
"""
TOMCAT_PAGE = "status.jsp?code=200"


def pyhttpd_conf(script: Path, ajp: bool = False) -> str:
    # Keep-alive connections are not cut after 100 requests: gunicorn does not cut them.
    return (
        f"LoadModule wsgi_module modules/mod_wsgi\nWSGIScriptAlias /hello {script}\n"
        "MaxKeepAliveRequests 0\n" + (f"AjpSecret {SECRET}\n" if ajp else "")
    )


@contextmanager
def gunicorn(script: Path, workers: int) -> Iterator[str]:
    """gunicorn with `workers` gevent workers serving the script; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "gevent",
         "--worker-connections", "1000", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
         "--chdir", str(script.parent), f"{script.stem}:application"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, 30, process)
        yield f"http://127.0.0.1:{port}/hello"
    finally:
        process.terminate()
        process.wait(30)


def workers_properties(port: int, pool_size: int) -> str:
    return (
        "worker.list=node1\nworker.node1.type=ajp13\nworker.node1.host=127.0.0.1\n"
        f"worker.node1.port={port}\nworker.node1.secret={SECRET}\n"
        f"worker.node1.connection_pool_size={pool_size}\n"
    )


def apache_front(ajp_port: int, processes: int, per_child: int) -> Apache:
    return Apache(
        mpm={"StartServers": processes, "ServerLimit": processes, "ThreadsPerChild": per_child,
             "MaxRequestWorkers": processes * per_child, "MinSpareThreads": per_child,
             "MaxSpareThreads": processes * per_child, "ThreadLimit": max(per_child, 64)},
        workers_properties=workers_properties(ajp_port, per_child),
        jk_conf="JkMount /* node1",
        jk_log_level="error",
    )


def over_http(args: argparse.Namespace, script: Path) -> dict[str, tuple[float, float, str]]:
    results = {}
    node = PyHttpd(pyhttpd_conf(script), start_servers=args.processes, threads_per_child=args.connections)
    with node:
        results["pyhttpd + mod_wsgi"] = measure(node.url + "/hello", args)
    with gunicorn(script, args.processes) as url:
        results["gunicorn + gevent"] = measure(url, args)
    return results


def behind_apache(args: argparse.Namespace, script: Path) -> dict[str, tuple[float, float, str]]:
    results = {}
    per_child = max(args.connections // args.processes, 25)
    node = PyHttpd(pyhttpd_conf(script, ajp=True), extra_listens=("ajp13",),
                   start_servers=args.processes, threads_per_child=args.connections)
    with node, apache_front(node.ports[1], args.processes, per_child) as apache:
        results["httpd+jk -> pyhttpd"] = measure(apache.url("/hello"), args)
    with Tomcat(route="node1", ajp_secret=SECRET, max_threads=400) as tomcat:
        with apache_front(tomcat.ajp_port, args.processes, per_child) as apache:
            results["httpd+jk -> Tomcat"] = measure(apache.url("/" + TOMCAT_PAGE), args, None)
    return results


def measure(url: str, args: argparse.Namespace, expected: bytes | None = HELLO) -> tuple[float, float, str]:
    """Check the answer, warm up (Tomcat's JIT needs a few seconds of load), then measure."""
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    if expected is not None and body != expected:
        raise RuntimeError(f"{url} answered {body!r}")
    warm_up(url)
    if args.warmup:
        wrk(url, args.warmup, args.connections, args.threads)
    return wrk(url, args.duration, args.connections, args.threads)


def report(title: str, results: dict[str, tuple[float, float, str]]) -> None:
    print(f"\n{title}")
    print(f"{'server':<24}{'requests/s':>12}{'p99 ms':>10}")
    for name, (rps, p99, _) in results.items():
        print(f"{name:<24}{rps:>12.0f}{p99:>10.2f}")
    (our_rps, our_p99, _), (ref_rps, ref_p99, _) = results.values()
    print(f"{'ratio pyhttpd/other':<24}{our_rps / ref_rps:>11.2f}x{our_p99 / ref_p99:>9.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--processes", type=int, default=2, help="children / workers of each server")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load before each measured run")
    parser.add_argument("--behind-apache", action="store_true", help="also compare nodes behind httpd + mod_jk")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="pyhttpd-bench-"))
    os.chmod(workdir, 0o755)
    script = workdir / "hello_app.py"
    script.write_text(HELLO_APP)
    os.chmod(script, 0o644)
    try:
        setup = f"{args.connections} connections, {args.threads} wrk threads, {args.duration} s, {args.processes} processes"
        report(f"hello WSGI application over HTTP; {setup}", over_http(args, script))
        if args.behind_apache:
            report(f"nodes behind Apache httpd + mod_jk (AJP13); {setup}", behind_apache(args, script))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
