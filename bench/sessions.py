"""Benchmark: session-writing requests on pyhttpd with replication off, async and sync.

Every request changes its session (tests/apps/session_app.py /write: a 256-byte
attribute and a counter), picked at random among --sessions sessions created
beforehand, on node1 over HTTP. Runs:

1. off:   one node, sessions in its agent only;
2. async: node1 with two members, SessionReplicationMode async;
3. sync:  the same with SessionReplicationMode sync (the response waits for both
          members to apply each change).

Prints requests/s and p99 latency of each, the cost of replication against "off", the CPU
time per request on node1 (children and agent; the agent's share apart) and on its members (which on one machine
take CPU from node1: compare the CPU figures when the box is small or busy), and the
replication lag (p50/p99 of DELTA -> applied ACK round trips, from node1's status), under
the full load and again at light load (one connection).

Then, with --memory N (default 100000), creates N sessions of 1 KB through HTTP on node1
of a two-node sync cluster and prints the resident memory of each node's session agent
and children.

    python bench/sessions.py [--duration 10] [--connections 32] [--threads 2]
                             [--sessions 1000] [--memory 100000] [--pin]

Needs wrk.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.session_nodes import Browser, Node, start_all  # noqa: E402
from tests.peers.ports import free_port  # noqa: E402

# The agents run before the children take the CPU again (it needs root; else a warning).
BENCH_CONF = "MaxKeepAliveRequests 0\nLogLevel warn\nSessionAgentNice -5\n"
WRITE_BYTES = 256

# wrk: every request writes one of the sessions, chosen at random.
WRITE_SCRIPT = """
local ids = {%s}
math.randomseed(os.time())
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/app/write?bytes=%d", {["Cookie"] = "JSESSIONID=" .. id})
end
"""

# wrk: new sessions (no cookie) until each thread made its share.
CREATE_SCRIPT = """
local share = %d
local done = 0
response = function(status, headers, body)
  done = done + 1
  if done >= share then wrk.thread:stop() end
end
"""


def start_cluster(mode: str, threads_per_child: int) -> list[Node]:
    """node1 alone (off) or node1..node3 (async, sync), started and ready."""
    extra = BENCH_CONF
    if mode == "off":
        nodes = [Node("node1", None, [], threads_per_child, extra=extra)]
    else:
        extra += f"SessionReplicationMode {mode}\n"
        ports = [free_port() for _ in range(3)]
        nodes = [
            Node(f"node{i + 1}", p, ports, threads_per_child, extra=extra)
            for i, p in enumerate(ports)
        ]
    start_all(nodes)
    deadline = time.monotonic() + 30
    while not all(n.status()["ready"] for n in nodes) or (
        mode != "off" and sum(m["state"] == "alive" for m in nodes[0].status()["members"]) < 2
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("cluster did not become ready")
        time.sleep(0.1)
    return nodes


def wrk(
    url: str, script: str, duration: str, connections: int, threads: int, cpus: str | None = None
) -> tuple[float, float, str]:
    """Requests/s, p99 latency (ms) and the report of one wrk run with a Lua script."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    pin = ["taskset", "-c", cpus] if cpus else []
    out = subprocess.run(
        [*pin, "wrk", "--latency", f"-t{threads}", f"-c{connections}", f"-d{duration}", "-s", f.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    Path(f.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    if "Non-2xx" in out or "Socket errors" in out:
        print(f"warning: errors during the run:\n{out}", file=sys.stderr)
    return rps, p99, out


def status(node: Node) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/cluster-status?json", timeout=30) as r:
        return json.loads(r.read())


def pin(node: Node, cpus: list[int]) -> None:
    """Keep a node's master, children and agent on *cpus* (new children inherit it)."""
    master = psutil.Process(node.server.pid)
    for process in [master, *master.children(recursive=True)]:
        process.cpu_affinity(cpus)


def write_run(mode: str, args: argparse.Namespace) -> dict:
    nodes = start_cluster(mode, args.threads_per_child)
    try:
        node1 = nodes[0]
        load_cpus = None
        if args.pin:  # node1 on the first half of the CPUs; its members and wrk on the rest
            cpus = sorted(psutil.Process().cpu_affinity())
            half = max(1, len(cpus) // 2)
            pin(node1, cpus[:half])
            for node in nodes[1:]:
                pin(node, cpus[half:] or cpus)
            load_cpus = ",".join(map(str, cpus[half:] or cpus))
        ids = []
        for _ in range(args.sessions):
            browser = Browser(node1.port)
            browser.get("/app/count")
            ids.append(browser.session_id)
        script = WRITE_SCRIPT % (",".join(f'"{i}"' for i in ids), WRITE_BYTES)
        url = f"http://127.0.0.1:{node1.port}/app/write"
        wrk(url, script, "3s", args.connections, args.threads, load_cpus)  # warm up
        agent = psutil.Process(status(node1)["pid"])
        cpu_before = [cpu_seconds(n) for n in nodes]
        agent_before = sum(agent.cpu_times()[:2])
        rps, p99, _ = wrk(url, script, f"{args.duration}s", args.connections, args.threads, load_cpus)
        cpu = [after - before for after, before in zip((cpu_seconds(n) for n in nodes), cpu_before, strict=True)]
        agent_cpu = sum(agent.cpu_times()[:2]) - agent_before
        loaded = status(node1)
        requests = rps * args.duration
        result = {
            "mode": mode, "rps": rps, "p99": p99, "lag_p50": loaded["lag_p50_ms"], "lag_p99": loaded["lag_p99_ms"],
            "cpu_node1": cpu[0] / requests * 1e6, "cpu_peers": sum(cpu[1:]) / requests * 1e6,
            "cpu_agent": agent_cpu / requests * 1e6,
        }  # fmt: skip
        if mode != "off":
            # Lag without saturation: the links keep their last 2048 round trips, all from this run.
            light_rps, _, _ = wrk(url, script, "4s", 2, 1)
            light = status(node1)
            result.update(light_rps=light_rps, light_p50=light["lag_p50_ms"], light_p99=light["lag_p99_ms"])
        return result
    finally:
        for node in nodes:
            node.close()


def cpu_seconds(node: Node) -> float:
    """CPU time used so far by a node's children and session agent."""
    total = 0.0
    for process in psutil.Process(node.server.pid).children(recursive=True):
        times = process.cpu_times()
        total += times.user + times.system
    return total


def memory_mb(node: Node) -> dict[str, float]:
    """MB of a node's session agent and of its children (the master excluded): resident
    (RSS, pages shared after fork counted in each process) and proportional (PSS, shared
    pages split between the processes sharing them, so the sum is what they really take)."""
    agent_pid = status(node)["pid"]
    mb = dict.fromkeys(("agent_rss", "agent_pss", "children_rss", "children_pss"), 0.0)
    for process in psutil.Process(node.server.pid).children(recursive=True):
        info = process.memory_full_info()
        who = "agent" if process.pid == agent_pid else "children"
        mb[f"{who}_rss"] += info.rss / 2**20
        mb[f"{who}_pss"] += info.pss / 2**20
    return mb


def memory_run(count: int, args: argparse.Namespace) -> None:
    ports = [free_port() for _ in range(2)]
    nodes = [
        Node(f"node{i + 1}", p, ports, args.threads_per_child, extra=BENCH_CONF)
        for i, p in enumerate(ports)
    ]
    start_all(nodes)
    try:
        node1, node2 = nodes
        while not (status(node1)["ready"] and status(node2)["ready"]):
            time.sleep(0.1)
        before = [memory_mb(n) for n in nodes]
        started = time.monotonic()
        made = 0
        while made < count:  # in rounds: a wrk thread that stopped early still waits for -d
            share = -(-(count - made) // args.threads)
            wrk(
                f"http://127.0.0.1:{node1.port}/app/write?bytes=1024",
                CREATE_SCRIPT % share, "5s", args.connections, args.threads,
            )  # fmt: skip
            made = status(node1)["sessions"]["sessions"]
        seconds = time.monotonic() - started
        time.sleep(1)
        print(f"\n{made} sessions of 1 KB created in {seconds:.1f} s ({made / seconds:.0f}/s), sync to node2")
        print(f"{'node':6}{'':5}{'agent MB':>10}{'children MB':>13}{'total MB':>10}{'(before)':>10}")
        for node, was in zip(nodes, before, strict=True):
            now = memory_mb(node)
            for kind in ("rss", "pss"):
                agent, children = now[f"agent_{kind}"], now[f"children_{kind}"]
                total_before = was[f"agent_{kind}"] + was[f"children_{kind}"]
                print(
                    f"{node.route:6}{kind.upper():5}{agent:10.1f}{children:13.1f}"
                    f"{agent + children:10.1f}{total_before:10.1f}"
                )
            sessions = status(node)["sessions"]
            print(f"{'':11}{sessions['sessions']} sessions, {sessions['bytes'] / 2**20:.0f} MB of attribute JSON")
    finally:
        for node in nodes:
            node.close()


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """This script's options; ``arguments([])`` gives their defaults."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--threads-per-child", type=int, default=64)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--memory", type=int, default=100_000, help="0 skips the memory run")
    parser.add_argument("--modes", default="off,async,sync")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run node1 on half the CPUs and its members and wrk on the other half, "
        "as if node1 had a machine of its own",
    )
    return parser.parse_args(argv)


def main() -> int:
    args = arguments()

    results = [write_run(mode, args) for mode in args.modes.split(",") if mode]
    base = next((r["rps"] for r in results if r["mode"] == "off"), None)
    if results:
        print(f"\nsession writes, {args.sessions} sessions, wrk -t{args.threads} -c{args.connections} -d{args.duration}s, node1 of 2 children" + (", node1 on CPUs of its own" if args.pin else ""))
        print(
            f"{'replication':12}{'req/s':>10}{'p99 ms':>9}{'vs off':>9}{'lag p50 ms':>12}{'lag p99 ms':>12}"
            f"{'CPU us/req node1':>18}{'(agent)':>9}{'peers':>8}"
        )
    for r in results:
        ratio = f"{r['rps'] / base:8.2f}x" if base else "        -"
        lag50 = f"{r['lag_p50']:12.2f}" if r["lag_p50"] is not None else f"{'-':>12}"
        lag99 = f"{r['lag_p99']:12.2f}" if r["lag_p99"] is not None else f"{'-':>12}"
        print(
            f"{r['mode']:12}{r['rps']:10.0f}{r['p99']:9.2f}{ratio}{lag50}{lag99}"
            f"{r['cpu_node1']:18.0f}{r['cpu_agent']:9.0f}{r['cpu_peers']:8.0f}"
        )
    for r in results:
        if "light_rps" in r:
            print(
                f"lag at light load ({r['mode']}, one connection, {r['light_rps']:.0f} req/s): "
                f"p50 {r['light_p50']:.2f} ms, p99 {r['light_p99']:.2f} ms"
            )
    if args.memory:
        memory_run(args.memory, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
