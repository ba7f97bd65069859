"""The results a benchmark run records: one measurement per step, facts beside them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Measurement:
    """One step: a system loaded at one concurrency level, or why it was not.

    Latencies are in ms; ``cpu_us`` is the CPU time per request (µs) of the processes
    the benchmark's ``cpu_of`` names; ``load1`` the 1-minute load average at the start.
    """

    benchmark: str
    case: str
    system: str
    connections: int
    rps: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    requests: int | None = None
    errors: int = 0
    cpu_us: float | None = None
    load1: float | None = None
    skipped: str | None = None
    rounds_rps: tuple[float, ...] = ()

    @property
    def measured(self) -> bool:
        """True when the step ran and has figures."""
        return self.skipped is None and self.rps is not None


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def combined(measurements: Sequence[Measurement], benchmark: str) -> list[Measurement]:
    """The rounds of each step of ``benchmark`` as one measurement, in the order they ran.

    Requests/s is the mean of the rounds (each round's in ``rounds_rps``), latencies, CPU
    time and load the median, errors the sum. A step none of whose rounds ran keeps the
    first reason it did not.
    """
    steps: dict[tuple[str, int, str], list[Measurement]] = {}
    for m in measurements:
        if m.benchmark == benchmark:
            steps.setdefault((m.case, m.connections, m.system), []).append(m)
    result = []
    for runs in steps.values():
        done = [m for m in runs if m.measured]
        if not done:
            result.append(runs[0])
            continue
        result.append(replace(
            done[0],
            rps=statistics.mean(m.rps for m in done),
            p50_ms=_median([m.p50_ms for m in done]),
            p90_ms=_median([m.p90_ms for m in done]),
            p99_ms=_median([m.p99_ms for m in done]),
            requests=sum(m.requests or 0 for m in done),
            errors=sum(m.errors for m in done),
            cpu_us=_median([m.cpu_us for m in done]),
            load1=_median([m.load1 for m in done]),
            rounds_rps=tuple(m.rps for m in done),
        ))
    return result


@dataclass(frozen=True)
class Fact:
    """A figure that is not a load run (memory, replication lag), with its target if any."""

    benchmark: str
    label: str
    value: str
    target: str = ""
    met: bool | None = None
