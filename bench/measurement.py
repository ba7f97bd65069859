"""The results a benchmark run records: one measurement per step, facts beside them."""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def measured(self) -> bool:
        """True when the step ran and has figures."""
        return self.skipped is None and self.rps is not None


@dataclass(frozen=True)
class Fact:
    """A figure that is not a load run (memory, replication lag), with its target if any."""

    benchmark: str
    label: str
    value: str
    target: str = ""
    met: bool | None = None
