"""Benchmark: pyhttpd against Apache httpd serving the same static files.

Both servers run 2 children x 64 workers, keep-alive, an access log line per request;
wrk loads each in turn with a 100-byte and a 100 KB file at every concurrency level.
Also records the resident memory of pyhttpd's master and children, idle and after load.

    python bench/static.py [--connections 16,64] [--duration 10] [--warmup 3] [--threads 2]

Needs wrk and Apache httpd (Debian's wrk and apache2 packages).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import systems
from benchmark import Benchmark, Comparison, Target
from load import Load
from process_usage import rss_mb
from report import print_tables

FILES = {"100B": ("small.bin", 100), "100KB": ("large.bin", 100 * 1024)}
#: Issue 3's memory targets for pyhttpd's processes.
MEMORY_LIMIT_MB = 40
#: "Flat over 100k requests": the largest child may grow this fraction at most, over at least
#: this many requests after the first measured run.
FLAT_TOLERANCE = 0.10
FLAT_REQUESTS = 100_000
#: Seconds pyhttpd may take to start all its children.
CHILDREN_TIMEOUT = 10


def memory(load: Load, pid: int, when: str) -> float:
    """Record the RSS of pyhttpd's master and of its largest child, once all children run.

    Returns the largest child's RSS in MB.
    """
    deadline = time.monotonic() + CHILDREN_TIMEOUT
    master, children = rss_mb(pid)
    while len(children) < systems.PROCESSES and time.monotonic() < deadline:
        time.sleep(0.1)
        master, children = rss_mb(pid)
    target = f"< {MEMORY_LIMIT_MB} MB each"
    load.fact(STATIC, f"pyhttpd master RSS, {when}", f"{master:.1f} MB", target, master < MEMORY_LIMIT_MB)
    largest = max(children, default=0.0)
    load.fact(STATIC, f"pyhttpd largest child RSS, {when}", f"{largest:.1f} MB "
              f"(of {len(children)} children)", target if when == "idle" else "",
              largest < MEMORY_LIMIT_MB if when == "idle" else None)
    return largest


def growth(load: Load, warm_mb: float, final_mb: float, requests: int) -> None:
    """Record how much the largest child grew between the first measured run and the end."""
    grown = final_mb - warm_mb
    met = requests >= FLAT_REQUESTS and grown <= warm_mb * FLAT_TOLERANCE
    load.fact(STATIC, "pyhttpd largest child RSS growth after the first run",
              f"{grown:+.1f} MB over {requests:,} requests",
              f"flat (within {FLAT_TOLERANCE:.0%}) over at least {FLAT_REQUESTS:,} requests", met)


def run(load: Load) -> None:
    """Measure both servers on both files at every level of ``load``."""
    contents = {name: os.urandom(size) for name, size in FILES.values()}
    apache = systems.apache()
    (apache.base / "htdocs").mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (apache.base / "htdocs" / name).write_bytes(data)
    ours = systems.pyhttpd(files={f"htdocs/{name}": data for name, data in contents.items()})
    with apache, ours:
        memory(load, ours.pid, "idle")
        servers = {"pyhttpd": (ours.url, ours.pid), "Apache httpd": (apache.url("").rstrip("/"), apache.pid)}
        warm_mb, requests = None, 0
        for connections, case, system in load.plan(STATIC):
            base, pid = servers[system]
            name = FILES[case][0]
            measured = load.measure(STATIC, case, system, connections, f"{base}/{name}", [pid],
                                    expect=contents[name])
            if system != "pyhttpd" or not measured.measured:
                continue
            if warm_mb is None:
                warm_mb = max(rss_mb(ours.pid)[1], default=0.0)
            else:
                requests += measured.requests
        final_mb = memory(load, ours.pid, "after the load")
        if warm_mb is not None:
            growth(load, warm_mb, final_mb, requests)


STATIC = Benchmark(
    key="static",
    title="Static files: pyhttpd vs Apache httpd",
    issue="#3 (MPM), #4 (HTTP core)",
    command="python bench/static.py",
    about="A 100-byte and a 100 KB file from the document root, keep-alive, the access log on "
          "in both servers, each with 2 children x 64 workers (httpd's worker MPM).",
    cases=tuple(FILES),
    systems=("pyhttpd", "Apache httpd"),
    comparisons=(Comparison("pyhttpd", "Apache httpd", Target(
        "at least 1.0x httpd's requests/s with p99 no worse than httpd's "
        "(issue 3 at wrk -t2 -c64; issue 4: both files, access log on)",
        min_rps_ratio=1.0, max_p99_ratio=1.0, connections=64)),),
    run=run,
    cpu_of="the server's master and children",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    Load.add_arguments(parser)
    load = Load.from_arguments(parser.parse_args())
    load.run(STATIC)
    print_tables([STATIC], load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
