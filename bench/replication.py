"""The session replication benchmark (bench/sessions.py) as one benchmark of the full run.

bench/sessions.py measures session-writing requests on a pyhttpd node with replication
off, async and sync, the replication lag, and the memory of 100k sessions; this drives
its functions and records their results.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re

import sessions
from benchmark import Benchmark, Comparison, Target
from load import Load
from measurement import Measurement

#: Connections of the session-writing runs (bench/sessions.py's default).
CONNECTIONS = 32
#: Sessions written at random during a run.
SESSIONS = 1000
#: Seconds a mode needs beyond its measured run: a cluster to start, sessions to create.
SETUP_SECONDS = 25
LAG_LIMIT_MS = 5.0
MEMORY_LIMIT_MB = 300
TARGET_SESSIONS = 100_000
#: Seconds the memory run needs (100k sessions created through HTTP on a busy 2-core machine).
MEMORY_SECONDS = 150


def _arguments(load: Load, memory: int) -> argparse.Namespace:
    """bench/sessions.py's options: its defaults, with this run's duration, threads and memory."""
    args = sessions.arguments([])
    args.duration = max(1, round(load.duration))
    args.connections, args.threads, args.sessions, args.memory = CONNECTIONS, load.threads, SESSIONS, memory
    # node1 has CPUs of its own, as on a machine of its own: on one shared machine the
    # members' CPU time would otherwise count as replication's cost on node1.
    args.pin = True
    return args


def run(load: Load, memory: int = TARGET_SESSIONS) -> None:
    """Session writes with each replication mode, then the memory of ``memory`` sessions."""
    args = _arguments(load, memory)
    for connections, case, mode in load.plan(SESSIONS_BENCHMARK):
        if load.time_left() < load.duration + SETUP_SECONDS:
            load.skip(SESSIONS_BENCHMARK, case, mode, connections, "time budget spent")
            continue
        load.begin(SESSIONS_BENCHMARK, case, mode, connections)
        load1 = os.getloadavg()[0]
        try:
            result = sessions.write_run(mode, args)
        except Exception as error:  # a mode that fails leaves the others to run
            load.add(Measurement(SESSIONS_BENCHMARK.key, case, mode, connections,
                                 skipped=f"failed: {str(error).splitlines()[0]}"))
            continue
        load.add(Measurement(SESSIONS_BENCHMARK.key, case, mode, connections,
                             rps=result["rps"], p99_ms=result["p99"], load1=load1,
                             cpu_us=result.get("cpu_node1")))
        record_result(load, mode, result)
    if not memory:
        return
    if load.time_left() < MEMORY_SECONDS:
        load.fact(SESSIONS_BENCHMARK, f"memory of {memory} sessions of 1 KB", "not measured: time budget spent")
        return
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        sessions.memory_run(memory, args)
    memory_facts(load, memory, printed.getvalue())


def record_result(load: Load, mode: str, result: dict) -> None:
    """Record the figures of one mode's run beside its measurement: lag, the peers' CPU time."""
    if result.get("lag_p99") is not None:
        load.fact(SESSIONS_BENCHMARK, f"replication lag ({mode}, under the load) p50 / p99",
                  f"{result['lag_p50']:.2f} / {result['lag_p99']:.2f} ms",
                  f"p99 < {LAG_LIMIT_MS:g} ms", result["lag_p99"] < LAG_LIMIT_MS)
    if result.get("light_p99") is not None:
        load.fact(SESSIONS_BENCHMARK, f"replication lag ({mode}, light load: "
                  f"{result['light_rps']:,.0f} req/s) p50 / p99",
                  f"{result['light_p50']:.2f} / {result['light_p99']:.2f} ms",
                  f"p99 < {LAG_LIMIT_MS:g} ms", result["light_p99"] < LAG_LIMIT_MS)
    if result.get("cpu_peers"):
        load.fact(SESSIONS_BENCHMARK, f"CPU time of the two peers per request ({mode})",
                  f"{result['cpu_peers']:.0f} µs (node1's: {result['cpu_node1']:.0f} µs)")


def memory_facts(load: Load, memory: int, printed: str) -> None:
    """Record each node's memory from the table bench/sessions.py's memory run prints.

    Rows are ``node kind agent children total before``, kind RSS or PSS (or no kind); the
    target is judged on PSS when there is one, as it does not count shared pages twice.
    """
    rows = re.findall(r"^(node\d+)\s+(RSS|PSS)?\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)",
                      printed, re.MULTILINE)
    if not rows:
        load.fact(SESSIONS_BENCHMARK, f"memory of {memory} sessions of 1 KB",
                  " ".join(printed.split()) or "no output")
        return
    judged = "PSS" if any(kind == "PSS" for _, kind, *_ in rows) else ""
    for node, kind, agent, children, total in rows:
        target = f"< {MEMORY_LIMIT_MB} MB for 100k sessions" if kind == judged else ""
        met = float(total) < MEMORY_LIMIT_MB if target and memory >= TARGET_SESSIONS else None
        load.fact(SESSIONS_BENCHMARK, f"{node} {kind or 'RSS'} with {memory} sessions of 1 KB "
                  "(sync replication)",
                  f"{float(total):.0f} MB (agent {float(agent):.0f} MB, children {float(children):.0f} MB)",
                  target, met)


SESSIONS_BENCHMARK = Benchmark(
    key="sessions",
    title="Session writes: replication off, async, sync (mod_session_repl)",
    issue="#8 (mod_session_repl)",
    command="python bench/sessions.py --pin",
    about=f"Every request writes a 256-byte attribute and a counter into one of {SESSIONS} sessions "
          "picked at random, on node1 over HTTP: one node (off), or node1 of three with "
          "SessionReplicationMode async or sync (a sync response waits for both peers' ACK). "
          "node1 runs on one CPU, its members and wrk on the other, as if node1 had a machine "
          "of its own; every node's session agent has SessionAgentNice -5.",
    cases=("write",),
    systems=("off", "async", "sync"),
    comparisons=(
        Comparison("sync", "off", Target("sync replication to two peers costs at most 30 % of "
                                         "the throughput without replication", min_rps_ratio=0.7)),
        Comparison("async", "off"),
    ),
    run=run,
    cpu_of="node1's children and session agent (bench/sessions.py's figure, when it gives one)",
    levels=(CONNECTIONS,),
    # Each mode starts its own cluster and creates its sessions: one round is what fits.
    rounds=1,
)
