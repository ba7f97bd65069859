"""The servers the benchmarks load, configured alike: pyhttpd, Apache httpd (with mod_jk),
Tomcat 10 and gunicorn + gevent, each on free loopback ports.

Every front end runs 2 children x 64 workers (httpd's worker MPM, pyhttpd's greenlets),
keep-alive without a per-connection request limit, and an access log line per request.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.peers.apache import Apache  # noqa: E402
from tests.peers.ports import free_port, wait_for_port  # noqa: E402
from tests.peers.tomcat import Tomcat  # noqa: E402
from tests.server import PyHttpd  # noqa: E402

PROCESSES = 2
THREADS_PER_CHILD = 64
AJP_SECRET = "bench-secret"
#: Tomcat's connector threads: more than every front end's AJP connections together.
TOMCAT_THREADS = 400
#: Both servers write this access log line for every request.
ACCESS_LOG = (
    "LoadModule log_config_module modules/mod_log_config\n"
    'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" timed\n'
    "CustomLog logs/access_log timed\n"
)
#: gunicorn never closes a keep-alive connection after N requests; neither do the others here.
KEEP_ALIVE = "KeepAlive On\nMaxKeepAliveRequests 0\n"


def worker_mpm(processes: int = PROCESSES, threads_per_child: int = THREADS_PER_CHILD) -> dict[str, int]:
    """httpd's worker MPM directives for exactly ``processes`` children of ``threads_per_child``."""
    return {
        "StartServers": processes,
        "ServerLimit": processes,
        "ThreadLimit": threads_per_child,
        "ThreadsPerChild": threads_per_child,
        "MaxRequestWorkers": processes * threads_per_child,
        "MinSpareThreads": threads_per_child,
        # Above the idle count of all children, so that idle maintenance keeps them all.
        "MaxSpareThreads": (processes + 1) * threads_per_child,
        "MaxConnectionsPerChild": 0,
    }


def pyhttpd(
    conf: str = "",
    *,
    files: Mapping[str, str | bytes] | None = None,
    extra_listens: tuple[str, ...] = (),
) -> PyHttpd:
    """A pyhttpd server (not started) with the benchmark sizing and access log, then ``conf``."""
    mpm = "".join(f"{name} {value}\n" for name, value in worker_mpm().items())
    return PyHttpd(
        ACCESS_LOG + KEEP_ALIVE + mpm + conf,
        files=dict(files or {}),
        extra_listens=extra_listens,
        start_servers=PROCESSES,
        threads_per_child=THREADS_PER_CHILD,
    )


def apache(workers_properties: str | None = None, jk_conf: str = "") -> Apache:
    """Apache httpd (not started) with the benchmark sizing; with mod_jk given a workers file."""
    return Apache(
        mpm=worker_mpm(),
        workers_properties=workers_properties,
        jk_conf=jk_conf,
        jk_log_level="error",
        extra_conf="MaxKeepAliveRequests 0",
    )


def workers_properties(ajp_ports: list[int], pool_size: int = THREADS_PER_CHILD) -> str:
    """mod_jk workers: "app" is the one ajp13 worker, or with several ports an lb over node1..N."""
    if len(ajp_ports) == 1:
        names, lines = ["app"], []
    else:
        names = [f"node{i}" for i in range(1, len(ajp_ports) + 1)]
        lines = ["worker.app.type=lb", f"worker.app.balance_workers={','.join(names)}"]
    for name, port in zip(names, ajp_ports, strict=True):
        lines += [f"worker.{name}.type=ajp13", f"worker.{name}.host=127.0.0.1",
                  f"worker.{name}.port={port}", f"worker.{name}.secret={AJP_SECRET}",
                  f"worker.{name}.connection_pool_size={pool_size}"]
    return "worker.list=app\n" + "\n".join(lines) + "\n"


def pyhttpd_jk_front(workers: str) -> PyHttpd:
    """pyhttpd with mod_jk (not started) sending every request to the worker "app"."""
    return pyhttpd(
        "LoadModule jk_module modules/mod_jk\nJkWorkersFile conf/workers.properties\n"
        "JkLogFile logs/mod_jk.log\nJkLogLevel error\nJkMount /* app\n",
        files={"conf/workers.properties": workers},
    )


def apache_jk_front(workers: str) -> Apache:
    """Apache httpd + mod_jk (not started) sending every request to the worker "app"."""
    return apache(workers, "JkMount /* app")


#: Tomcat's stock server.xml logs every request with this valve; the pattern is ACCESS_LOG's.
TOMCAT_ACCESS_LOG = (
    '<Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs" '
    'prefix="access_log" suffix=".txt" pattern="%h %l %u %t &quot;%r&quot; %s %b %D"/>'
)


def tomcat(route: str = "node1", *, access_log: bool = False) -> Tomcat:
    """A Tomcat 10 (not started) with the test webapp and an AJP connector that needs the secret;
    with ``access_log``, a line per request as pyhttpd's ACCESS_LOG (for Tomcat as the system
    compared, not as the back end every front end shares)."""
    return Tomcat(route=route, ajp_secret=AJP_SECRET, max_threads=TOMCAT_THREADS,
                  engine_xml=TOMCAT_ACCESS_LOG if access_log else "")


@contextmanager
def gunicorn(script: Path, workers: int = PROCESSES) -> Iterator[tuple[str, int]]:
    """gunicorn with ``workers`` gevent workers serving ``script``'s ``application``.

    Yields its base URL and the arbiter's pid; stops it on exit.
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "gevent",
         "--worker-connections", "1000", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
         "--access-logfile", str(script.parent / "gunicorn-access.log"),
         "--chdir", str(script.parent), f"{script.stem}:application"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, 30, process)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(30)
