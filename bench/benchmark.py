"""What a benchmark is: the systems it loads, the comparisons it makes, the issue's targets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from load import Load


@dataclass(frozen=True)
class Target:
    """A goal an issue sets for a comparison, in its words and as numbers.

    ``min_rps_ratio``: ours / peer requests/s must reach it; ``max_p99_ratio``: ours / peer
    p99 latency must not exceed it; ``connections``: the concurrency level the issue sets
    it at (at other levels the ratios are shown without a verdict).
    """

    text: str
    min_rps_ratio: float | None = None
    max_p99_ratio: float | None = None
    connections: int | None = None

    @property
    def short(self) -> str:
        """The numbers of the target, e.g. "req/s >= 1.0x, p99 <= 1.5x"."""
        parts = []
        if self.min_rps_ratio is not None:
            parts.append(f"req/s >= {self.min_rps_ratio:g}x")
        if self.max_p99_ratio is not None:
            parts.append(f"p99 <= {self.max_p99_ratio:g}x")
        if parts and self.connections is not None:
            parts.append(f"at c={self.connections}")
        return ", ".join(parts) or "none"

    def met(self, rps_ratio: float, p99_ratio: float | None) -> bool:
        """Whether the ratios of one comparison meet the target."""
        if self.min_rps_ratio is not None and rps_ratio < self.min_rps_ratio:
            return False
        if self.max_p99_ratio is not None:
            return p99_ratio is not None and p99_ratio <= self.max_p99_ratio
        return True


@dataclass(frozen=True)
class Comparison:
    """``ours`` against ``peer`` (system names of the benchmark), with the issue's target."""

    ours: str
    peer: str
    target: Target | None = None


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of an issue: every case is run on every system at every level.

    ``run(load)`` starts the systems, measures each step of ``load.plan(self)`` through
    ``load.measure`` and stops them. ``levels`` and ``rounds`` fix the concurrency levels
    and the rounds when the benchmark has its own; otherwise the runner's apply. ``cpu_of``
    says which processes the CPU time per request counts.
    """

    key: str
    title: str
    issue: str
    command: str
    about: str
    cases: tuple[str, ...]
    systems: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    run: Callable[[Load], None]
    cpu_of: str = ""
    levels: tuple[int, ...] | None = None
    rounds: int | None = None

    def plan(self, levels: tuple[int, ...], rounds: int = 1) -> Iterator[tuple[int, str, str]]:
        """(connections, case, system) of every step, in the order they run.

        The systems of a case run back to back, ``rounds`` times in turn, so that each
        ratio compares runs made under the same load of the (shared) machine.
        """
        for connections in self.levels or levels:
            for case in self.cases:
                for _ in range(self.rounds or rounds):
                    for system in self.systems:
                        yield connections, case, system

    def steps(self, levels: tuple[int, ...], rounds: int = 1) -> int:
        """How many measured runs the plan holds."""
        return len(self.levels or levels) * (self.rounds or rounds) * len(self.cases) * len(self.systems)
