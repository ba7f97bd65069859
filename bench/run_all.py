"""Run every benchmark against its peers in one bounded run and write bench/report.md.

    python bench/run_all.py [--budget 15] [--connections 16,64] [--rounds 2] [--duration D]
                            [--warmup 3] [--threads 2] [--only static,wsgi,...]
                            [--session-memory 100000]

Static files (pyhttpd vs Apache httpd), the hello WSGI application (vs gunicorn + gevent),
mod_jk over one and two Tomcats (vs Apache httpd + mod_jk), app nodes behind Apache httpd
+ mod_jk (vs Tomcat nodes) and, when bench/sessions.py is in the tree, session writes with
replication off/async/sync. One progress line per measured run; steps that would end after
the budget are recorded as skipped. Writes the report and PNG charts under bench/.

Needs wrk, Apache httpd with mod_jk, Tomcat 10 (bin/setup) and pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import shlex
import sys
import time
from pathlib import Path

import jk
import replication
import static
import wsgi
from charts import chart
from load import Load
from machine import commit, machine_facts
from report import render, summary

BENCH = Path(__file__).resolve().parent
#: Share of the budget given to measured runs; the rest starts and stops the servers.
MEASURED_SHARE = 0.55
MIN_DURATION, MAX_DURATION = 3.0, 10.0


def fitted_duration(budget_s: float, steps: int, warmups: int, warmup: float) -> float:
    """Seconds per measured run so that the runs take their share of the budget."""
    seconds = (budget_s * MEASURED_SHARE - warmups * warmup) / max(steps, 1)
    return round(min(MAX_DURATION, max(MIN_DURATION, seconds)), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=15, help="minutes for the whole run")
    parser.add_argument("--connections", default="16,64",
                        help="concurrency levels: wrk connections, comma-separated")
    parser.add_argument("--duration", type=float, default=None,
                        help=f"seconds per measured run (default: fitted to the budget, "
                             f"{MIN_DURATION:g} to {MAX_DURATION:g})")
    parser.add_argument("--warmup", type=float, default=3,
                        help="seconds of load before the first measured run of each system")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=2,
                        help="measured runs of each system at each level, taking turns")
    parser.add_argument("--only", default="", help="benchmark keys to run, comma-separated")
    parser.add_argument("--session-memory", type=int, default=100_000,
                        help="sessions of 1 KB for the memory figure (0 skips it)")
    parser.add_argument("--report", type=Path, default=BENCH / "report.md")
    args = parser.parse_args()

    benchmarks = [
        static.STATIC, wsgi.HELLO, jk.JK, jk.JK_LB, wsgi.BEHIND_APACHE,
        dataclasses.replace(replication.SESSIONS_BENCHMARK,
                            run=functools.partial(replication.run, memory=args.session_memory)),
    ]
    if args.only:
        keys = args.only.split(",")
        unknown = set(keys) - {b.key for b in benchmarks}
        if unknown:
            parser.error(f"unknown benchmark {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(b.key for b in benchmarks)}")
        benchmarks = [b for b in benchmarks if b.key in keys]
    levels = tuple(int(c) for c in args.connections.split(",") if c)
    steps = sum(b.steps(levels, args.rounds) for b in benchmarks)
    warmups = sum(len(b.cases) * len(b.systems) for b in benchmarks)
    budget_s = args.budget * 60
    duration = args.duration or fitted_duration(budget_s, steps, warmups, args.warmup)

    started = time.monotonic()
    load = Load(levels, duration, args.warmup, args.threads, started + budget_s, steps, args.rounds)
    load_before = os.getloadavg()
    machine = machine_facts()
    print(f"{steps} measured runs of {duration:g} s at c={args.connections}, "
          f"budget {args.budget:g} min; load average {load_before[0]:.2f}", flush=True)
    for benchmark in benchmarks:
        load.run(benchmark)
    minutes = (time.monotonic() - started) / 60
    # Servers start from the tree as it is when their benchmark begins.
    if (at_end := commit()) != machine["pyhttpd"].split("commit ", 1)[1]:
        machine["pyhttpd"] += f"; commits landed during the run, at its end: {at_end}"

    report = args.report.resolve()
    charts = {}
    for benchmark in benchmarks:
        path = chart(benchmark, load.measurements, report.parent / "charts" / f"{benchmark.key}.png")
        if path is not None:
            charts[benchmark.key] = path.relative_to(report.parent)
    command = shlex.join(["python", "bench/run_all.py", *sys.argv[1:]])
    report.write_text(render(
        command=command, machine=machine, load=load, benchmarks=benchmarks, charts=charts,
        started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() - minutes * 60)),
        minutes=minutes, budget_minutes=args.budget,
        load_before=load_before, load_after=os.getloadavg(),
    ))
    print("\n".join(summary(benchmarks, load)).replace("**", ""))
    print(f"wrote {report} and {len(charts)} charts in {minutes:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
