"""Driving the load of a benchmark run: warm-up, wrk runs, CPU time, progress, time budget."""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator

from benchmark import Benchmark
from measurement import Fact, Measurement
from process_usage import cpu_seconds, cpu_used
from wrk import WrkError, run_wrk


class Load:
    """Settings of a run and everything it measured, shared by every benchmark of the run.

    ``levels`` are the concurrency levels (wrk connections), ``duration`` and ``warmup``
    seconds of each measured and warm-up wrk run, ``threads`` wrk's threads. A step that
    could not finish before ``deadline`` (time.monotonic()) is recorded as skipped.
    ``total_steps`` numbers the progress lines. Every step runs ``rounds`` times, the
    systems of a case taking turns.
    """

    def __init__(
        self,
        levels: tuple[int, ...] = (16, 64),
        duration: float = 10,
        warmup: float = 3,
        threads: int = 2,
        deadline: float | None = None,
        total_steps: int = 0,
        rounds: int = 1,
    ) -> None:
        self.levels = levels
        self.rounds = rounds
        self.duration = duration
        self.warmup = warmup
        self.threads = threads
        self.deadline = deadline
        self.total_steps = total_steps
        self.step = 0
        self.measurements: list[Measurement] = []
        self.facts: list[Fact] = []
        self._warm: set[tuple[str, str, str]] = set()

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, connections: str = "16,64") -> None:
        """The options every benchmark script takes."""
        parser.add_argument("--connections", default=connections,
                            help="concurrency levels: wrk connections, comma-separated")
        parser.add_argument("--duration", type=float, default=10, help="seconds per measured wrk run")
        parser.add_argument("--warmup", type=float, default=3,
                            help="seconds of load before the first measured run of each system")
        parser.add_argument("--threads", type=int, default=2, help="wrk threads")
        parser.add_argument("--rounds", type=int, default=1,
                            help="measured runs of each system at each level, taking turns")

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> Load:
        """A Load for one benchmark script from the options of ``add_arguments``."""
        levels = tuple(int(c) for c in str(args.connections).split(",") if c)
        return cls(levels, args.duration, args.warmup, args.threads, rounds=args.rounds)

    def plan(self, benchmark: Benchmark) -> Iterator[tuple[int, str, str]]:
        """The steps of ``benchmark`` at this run's levels: (connections, case, system)."""
        return benchmark.plan(self.levels, self.rounds)

    def time_left(self) -> float:
        """Seconds until the deadline (infinite without one)."""
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def measure(
        self,
        benchmark: Benchmark,
        case: str,
        system: str,
        connections: int,
        url: str,
        pids: Iterable[int],
        *,
        expect: bytes | None = None,
        script: str | None = None,
    ) -> Measurement:
        """Load ``url`` with wrk and record requests/s, latency and CPU time per request.

        The first time a (case, system) is loaded, its answer is checked (status 200 and,
        given ``expect``, that body) and it gets ``warmup`` seconds of load first. The CPU
        time counts the process trees rooted at ``pids``.
        """
        key = (benchmark.key, case, system)
        needed = self.duration + (0 if key in self._warm else self.warmup)
        if self.time_left() < needed:
            return self.skip(benchmark, case, system, connections, "time budget spent")
        self.begin(benchmark, case, system, connections)
        load1 = os.getloadavg()[0]
        try:
            if key not in self._warm:
                check_answer(url, expect)
                if self.warmup:
                    run_wrk(url, connections=connections, duration=self.warmup,
                            threads=self.threads, script=script)
                self._warm.add(key)
            pids = list(pids)
            before = cpu_seconds(pids)
            result = run_wrk(url, connections=connections, duration=self.duration,
                             threads=self.threads, script=script)
            cpu = cpu_used(before, cpu_seconds(pids))
        except (OSError, WrkError, RuntimeError) as error:
            measurement = Measurement(benchmark.key, case, system, connections,
                                      load1=load1, skipped=f"failed: {error}")
        else:
            measurement = Measurement(
                benchmark.key, case, system, connections,
                rps=result.rps, p50_ms=result.p50_ms, p90_ms=result.p90_ms, p99_ms=result.p99_ms,
                requests=result.requests, errors=result.errors,
                cpu_us=cpu / result.requests * 1e6 if result.requests else None, load1=load1,
            )
        return self.add(measurement)

    def begin(self, benchmark: Benchmark, case: str, system: str, connections: int) -> None:
        """Print the start of a step's progress line."""
        self.step += 1
        total = self.total_steps or benchmark.steps(self.levels, self.rounds)
        print(f"[{self.step}/{total}] {benchmark.key} {case} {system} c={connections} ...",
              end=" ", flush=True)

    def add(self, measurement: Measurement) -> Measurement:
        """Record a step begun with ``begin`` and finish its progress line."""
        self.measurements.append(measurement)
        if measurement.measured:
            errors = f", {measurement.errors} errors" if measurement.errors else ""
            p99 = f", p99 {measurement.p99_ms:.1f} ms" if measurement.p99_ms is not None else ""
            print(f"{measurement.rps:,.0f} req/s{p99}{errors}", flush=True)
        else:
            print(measurement.skipped, flush=True)
        return measurement

    def skip(self, benchmark: Benchmark, case: str, system: str, connections: int,
             reason: str) -> Measurement:
        """Record a step that does not run, with the reason."""
        self.begin(benchmark, case, system, connections)
        return self.add(Measurement(benchmark.key, case, system, connections, skipped=reason))

    def skip_rest(self, benchmark: Benchmark, reason: str) -> None:
        """Record every step of ``benchmark`` not recorded yet as skipped."""
        done = Counter((m.connections, m.case, m.system) for m in self.measurements
                       if m.benchmark == benchmark.key)
        for step in self.plan(benchmark):
            if done[step]:
                done[step] -= 1
            else:
                connections, case, system = step
                self.skip(benchmark, case, system, connections, reason)

    def fact(self, benchmark: Benchmark, label: str, value: str, target: str = "",
             met: bool | None = None) -> None:
        """Record a figure that is not a load run, and print it."""
        self.facts.append(Fact(benchmark.key, label, value, target, met))
        verdict = "" if met is None else (" (met)" if met else " (not met)")
        print(f"      {benchmark.key}: {label}: {value}{verdict}", flush=True)

    def run(self, benchmark: Benchmark) -> None:
        """Run ``benchmark``; a failure (a peer that does not start, say) skips its remaining steps."""
        if self.time_left() < self.duration:
            self.skip_rest(benchmark, "time budget spent")
            return
        try:
            benchmark.run(self)
        except Exception as error:  # one broken benchmark must not end the run
            print(f"\n{benchmark.key} failed: {error}", file=sys.stderr, flush=True)
            self.skip_rest(benchmark, f"failed: {str(error).splitlines()[0]}")


def check_answer(url: str, expect: bytes | None) -> None:
    """Raise unless ``url`` answers 200 (with the body ``expect`` when given)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    if expect is not None and body != expect:
        raise RuntimeError(f"{url} answered {body[:200]!r}, expected {expect[:200]!r}")
