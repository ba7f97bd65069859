"""Benchmark: pyhttpd + mod_jk against Apache httpd + mod_jk, in front of the same Tomcat 10.

Both front ends forward every request over AJP13 with the same workers.properties to one
Tomcat (JK), or to an lb worker over two Tomcats (JK_LB, --lb); wrk loads each front end
in turn at every concurrency level.

    python bench/jk.py [--lb] [--connections 16,64] [--duration 10] [--warmup 3] [--threads 2]

Needs wrk, Tomcat 10 and Apache httpd with mod_jk (bin/setup installs them).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack

import systems
from benchmark import Benchmark, Comparison, Target
from load import Load
from report import print_tables
from wrk import run_wrk

#: A JSP of the test webapp that answers 200 with a short body.
PAGE = "/status.jsp?code=200"
EXPECT = b"status=200\n"


def run_with_tomcats(load: Load, benchmark: Benchmark, count: int) -> None:
    """Measure both front ends over ``count`` Tomcats (an lb worker when more than one)."""
    with ExitStack() as stack:
        tomcats = [stack.enter_context(systems.tomcat(f"node{i}")) for i in range(1, count + 1)]
        for tomcat in tomcats:
            # The JVM compiles its hot paths under load: give it that before any front end.
            run_wrk(tomcat.url(PAGE.lstrip("/")), connections=max(load.levels),
                    duration=load.warmup, threads=load.threads)
        workers = systems.workers_properties([tomcat.ajp_port for tomcat in tomcats])
        apache = stack.enter_context(systems.apache_jk_front(workers))
        ours = stack.enter_context(systems.pyhttpd_jk_front(workers))
        fronts = {"pyhttpd + mod_jk": (ours.url + PAGE, ours.pid),
                  "Apache httpd + mod_jk": (apache.url(PAGE), apache.pid)}
        for connections, case, system in load.plan(benchmark):
            url, pid = fronts[system]
            load.measure(benchmark, case, system, connections, url, [pid], expect=EXPECT)


def run(load: Load) -> None:
    """The front ends over one Tomcat."""
    run_with_tomcats(load, JK, 1)


def run_lb(load: Load) -> None:
    """The front ends over an lb worker balancing two Tomcats."""
    run_with_tomcats(load, JK_LB, 2)


SYSTEMS = ("pyhttpd + mod_jk", "Apache httpd + mod_jk")
ABOUT = ("GET {page} from the test webapp, forwarded over AJP13 with the same workers.properties "
         "(connection_pool_size 64, a secret); both front ends have 2 children x 64 workers.")
JK = Benchmark(
    key="jk",
    title="mod_jk: pyhttpd + mod_jk vs Apache httpd + mod_jk, one Tomcat 10",
    issue="#5 (mod_jk, AJP13)",
    command="python bench/jk.py",
    about=ABOUT.format(page=PAGE) + " One Tomcat 10 behind an ajp13 worker.",
    cases=("ajp13",),
    systems=SYSTEMS,
    comparisons=(Comparison(*SYSTEMS, Target(
        "at least 1.0x httpd + mod_jk's requests/s, p99 at most 1.5x",
        min_rps_ratio=1.0, max_p99_ratio=1.5)),),
    run=run,
    cpu_of="the front end's master and children (Tomcat is shared and not counted)",
)
JK_LB = Benchmark(
    key="jk-lb",
    title="mod_jk lb: pyhttpd + mod_jk vs Apache httpd + mod_jk, two Tomcat 10",
    issue="#6 (lb worker)",
    command="python bench/jk.py --lb",
    about=ABOUT.format(page=PAGE) + " An lb worker (method R, lbfactor 1) over two Tomcat 10.",
    cases=("lb",),
    systems=SYSTEMS,
    comparisons=(Comparison(*SYSTEMS),),
    run=run_lb,
    cpu_of="the front end's master and children (the Tomcats are shared and not counted)",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lb", action="store_true", help="two Tomcats behind an lb worker")
    Load.add_arguments(parser)
    args = parser.parse_args()
    load = Load.from_arguments(args)
    benchmark = JK_LB if args.lb else JK
    load.run(benchmark)
    print_tables([benchmark], load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
