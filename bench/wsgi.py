"""Benchmark: a hello-world WSGI application on pyhttpd against gunicorn + gevent, and
pyhttpd nodes against Tomcat nodes behind the same Apache httpd + mod_jk.

1. HELLO: pyhttpd (mod_wsgi, 2 children) and gunicorn (2 gevent workers) serve the same
   script over HTTP, both writing an access log.
2. BEHIND_APACHE (--behind-apache): Apache httpd + mod_jk forwards every request over
   AJP13 to a pyhttpd node (ajp13 listener, the same script), then to a Tomcat 10 node (a
   JSP that answers as little).

    python bench/wsgi.py [--behind-apache] [--connections 16,64] [--duration 10]
                         [--warmup 3] [--threads 2]

Needs wrk and gunicorn (pip install -e '.[bench]'); --behind-apache also needs Apache
httpd with mod_jk and Tomcat 10 (bin/setup installs them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import systems
from benchmark import Benchmark, Comparison, Target
from load import Load
from report import print_tables
from wrk import run_wrk

HELLO_BODY = b"Hello, world!\n"
HELLO_APP = f"""\
BODY = {HELLO_BODY!r}
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
"""
TOMCAT_PAGE = "/status.jsp?code=200"
#: Tomcat's AccessLogValve buffers its lines by default; the pyhttpd node does too.
BUFFERED_LOGS = "BufferedLogs On\n"


@contextmanager
def hello_app() -> Iterator[Path]:
    """The hello-world script in a temporary directory every user can read."""
    workdir = Path(tempfile.mkdtemp(prefix="pyhttpd-bench-"))
    try:
        os.chmod(workdir, 0o755)
        script = workdir / "hello_app.py"
        script.write_text(HELLO_APP)
        os.chmod(script, 0o644)
        yield script
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def node_conf(script: Path) -> str:
    """pyhttpd serving the script at /hello, with an AJP secret for its ajp13 listener."""
    return f"LoadModule wsgi_module modules/mod_wsgi\nWSGIScriptAlias /hello {script}\nAjpSecret {systems.AJP_SECRET}\n"


def run_hello(load: Load) -> None:
    """pyhttpd and gunicorn, both started for the whole run and loaded in turn."""
    with hello_app() as script, systems.pyhttpd(node_conf(script)) as ours, \
            systems.gunicorn(script) as (gunicorn_url, gunicorn_pid):
        servers = {"pyhttpd + mod_wsgi": (ours.url, ours.pid),
                   "gunicorn + gevent": (gunicorn_url, gunicorn_pid)}
        for connections, case, system in load.plan(HELLO):
            base, pid = servers[system]
            load.measure(HELLO, case, system, connections, base + "/hello", [pid], expect=HELLO_BODY)


def run_behind_apache(load: Load) -> None:
    """One Apache httpd + mod_jk in front of a pyhttpd node, another in front of a Tomcat node."""
    with hello_app() as script, \
            systems.pyhttpd(node_conf(script) + BUFFERED_LOGS, extra_listens=("ajp13",)) as node, \
            systems.tomcat("node1", access_log=True) as tomcat:
        run_wrk(tomcat.url(TOMCAT_PAGE.lstrip("/")), connections=max(load.levels),
                duration=load.warmup, threads=load.threads)
        with systems.apache_jk_front(systems.workers_properties([node.ports[1]])) as to_node, \
                systems.apache_jk_front(systems.workers_properties([tomcat.ajp_port])) as to_tomcat:
            setups = {
                "pyhttpd nodes": (to_node.url("/hello"), node.pid, HELLO_BODY),
                "Tomcat nodes": (to_tomcat.url(TOMCAT_PAGE), tomcat.pid, b"status=200\n"),
            }
            for connections, case, system in load.plan(BEHIND_APACHE):
                url, pid, expect = setups[system]
                load.measure(BEHIND_APACHE, case, system, connections, url, [pid], expect=expect)


HELLO = Benchmark(
    key="wsgi",
    title="Hello WSGI: pyhttpd + mod_wsgi vs gunicorn + gevent",
    issue="#7 (mod_wsgi)",
    command="python bench/wsgi.py",
    about="A WSGI application answering 14 bytes, over HTTP with keep-alive; pyhttpd with 2 "
          "children x 64 greenlets, gunicorn with 2 gevent workers; both write an access log.",
    cases=("hello",),
    systems=("pyhttpd + mod_wsgi", "gunicorn + gevent"),
    comparisons=(Comparison("pyhttpd + mod_wsgi", "gunicorn + gevent",
                            Target("at least 2x gunicorn + gevent's requests/s", min_rps_ratio=2.0)),),
    run=run_hello,
    cpu_of="the server's master (arbiter) and children (workers)",
)
BEHIND_APACHE = Benchmark(
    key="nodes",
    title="App nodes behind Apache httpd + mod_jk: pyhttpd vs Tomcat 10",
    issue="#7 (AJP13 listener)",
    command="python bench/wsgi.py --behind-apache",
    about="Apache httpd + mod_jk (2 children x 64 threads) forwards every request over AJP13 "
          "to one node: a pyhttpd node (ajp13 listener, the hello WSGI application, 2 "
          "children) or a Tomcat 10 node (a JSP answering a short text); both nodes log "
          "each request, buffered (Tomcat's stock AccessLogValve; pyhttpd's BufferedLogs On).",
    cases=("hello",),
    systems=("pyhttpd nodes", "Tomcat nodes"),
    comparisons=(Comparison("pyhttpd nodes", "Tomcat nodes",
                            Target("at least 1.0x Tomcat nodes' requests/s", min_rps_ratio=1.0)),),
    run=run_behind_apache,
    cpu_of="the node (pyhttpd's master and children, or Tomcat's JVM); Apache is not counted",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--behind-apache", action="store_true",
                        help="also compare nodes behind Apache httpd + mod_jk")
    Load.add_arguments(parser)
    args = parser.parse_args()
    load = Load.from_arguments(args)
    benchmarks = [HELLO, BEHIND_APACHE] if args.behind_apache else [HELLO]
    for benchmark in benchmarks:
        load.run(benchmark)
    print_tables(benchmarks, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
