"""The benchmark report: ratios against the peers, the markdown of bench/report.md, text tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark import Benchmark, Comparison
from load import Load
from measurement import Fact, Measurement, combined


@dataclass(frozen=True)
class Ratio:
    """One comparison of a benchmark at one case and concurrency level."""

    benchmark: Benchmark
    comparison: Comparison
    case: str
    connections: int
    ours: Measurement
    peer: Measurement

    @property
    def rps(self) -> float:
        """Ours / peer requests/s (above 1: ours serves more)."""
        return self.ours.rps / self.peer.rps

    @property
    def p99(self) -> float | None:
        """Ours / peer p99 latency (below 1: ours answers sooner)."""
        if self.ours.p99_ms is None or not self.peer.p99_ms:
            return None
        return self.ours.p99_ms / self.peer.p99_ms

    @property
    def met(self) -> bool | None:
        """Whether the issue's target is met; None when the issue sets none."""
        target = self.comparison.target
        if target is None or (target.min_rps_ratio is None and target.max_p99_ratio is None):
            return None
        if target.connections is not None and target.connections != self.connections:
            return None
        return target.met(self.rps, self.p99)


def ratios(benchmark: Benchmark, measurements: Sequence[Measurement]) -> list[Ratio]:
    """Every comparison of ``benchmark`` at every case and level where both sides were measured."""
    found = {(m.case, m.connections, m.system): m
             for m in combined(measurements, benchmark.key) if m.measured}
    keys = sorted({(m.case, m.connections) for m in found.values()},
                  key=lambda key: (benchmark.cases.index(key[0]), key[1]))
    rows = []
    for case, connections in keys:
        for comparison in benchmark.comparisons:
            ours = found.get((case, connections, comparison.ours))
            peer = found.get((case, connections, comparison.peer))
            if ours is not None and peer is not None and peer.rps:
                rows.append(Ratio(benchmark, comparison, case, connections, ours, peer))
    return rows


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _rps(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "-"}[met]


def _ratio_verdict(ratio: Ratio) -> str:
    target = ratio.comparison.target
    if ratio.met is None and target is not None and target.connections not in (None, ratio.connections):
        return f"(set at c={target.connections})"
    return _verdict(ratio.met)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _measurement_rows(benchmark: Benchmark, measurements: Sequence[Measurement]) -> list[list[str]]:
    rows = []
    for m in combined(measurements, benchmark.key):
        if not m.measured:
            rows.append([m.case, str(m.connections), m.system, f"not measured: {m.skipped}",
                         "", "", "", "", "", "", ""])
            continue
        rows.append([m.case, str(m.connections), m.system, _rps(m.rps),
                     " / ".join(_rps(r) for r in m.rounds_rps) if len(m.rounds_rps) > 1 else "-",
                     _ms(m.p50_ms), _ms(m.p90_ms), _ms(m.p99_ms), str(m.errors),
                     "-" if m.cpu_us is None else f"{m.cpu_us:.0f}",
                     "-" if m.load1 is None else f"{m.load1:.1f}"])
    return rows


def _ratio_rows(rows: Sequence[Ratio]) -> list[list[str]]:
    return [[r.case, str(r.connections), f"{r.comparison.ours} / {r.comparison.peer}", _x(r.rps), _x(r.p99),
             r.comparison.target.short if r.comparison.target else "none set",
             _ratio_verdict(r)] for r in rows]


def _fact_rows(facts: Sequence[Fact]) -> list[list[str]]:
    return [[f.label, f.value, f.target or "-", _verdict(f.met)] for f in facts]


MEASUREMENT_HEADER = ("case", "c", "system", "req/s", "rounds req/s", "p50 ms", "p90 ms", "p99 ms",
                      "errors", "CPU µs/req", "load")
RATIO_HEADER = ("case", "c", "ours / peer", "req/s ratio", "p99 ratio", "target", "")


def render(
    *,
    command: str,
    machine: Mapping[str, str],
    load: Load,
    benchmarks: Sequence[Benchmark],
    charts: Mapping[str, Path],
    started: str,
    minutes: float,
    budget_minutes: float,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> str:
    """The markdown of bench/report.md; chart paths are relative to the report."""
    lines = [
        "# Benchmark report",
        "",
        f"Measured on {started} on this machine by one run of",
        "",
        f"    {command}",
        "",
        f"which took {minutes:.1f} min of its {budget_minutes:g} min budget. Each measured run is "
        f"`wrk --latency -t{load.threads} -c<c> -d{load.duration:g}s` with keep-alive, after "
        f"{load.warmup:g} s of warm-up load for each system; `c` is the number of wrk "
        f"connections. The systems of a case take turns, {load.rounds} round(s) each, so each "
        "ratio compares runs made under the same conditions: req/s is the mean of the rounds "
        "(each round's in `rounds req/s`), latencies, CPU time and load their median.",
        "",
        f"**The machine was busy**: load average {', '.join(f'{v:.2f}' for v in load_before)} "
        f"(1, 5, 15 min) at the start and {', '.join(f'{v:.2f}' for v in load_after)} at the end, "
        f"on {machine.get('cores', '?')} cores that wrk shares with the servers. The `load` column "
        "is the 1-minute load average when each run started. Absolute figures vary from run to "
        "run by a large factor on such a machine; read the ratios.",
        "",
        "## Machine",
        "",
        *_table(("", "version or value"), [[name, value] for name, value in machine.items()]),
        "",
        "## Summary",
        "",
        *summary(benchmarks, load),
        "",
    ]
    for benchmark in benchmarks:
        lines += _section(benchmark, load, charts.get(benchmark.key))
    return "\n".join(lines) + "\n"


def summary(benchmarks: Sequence[Benchmark], load: Load) -> list[str]:
    """The markdown table of every ratio against a peer and every figure with a target."""
    rows = []
    for benchmark in benchmarks:
        found = ratios(benchmark, load.measurements)
        for r in found:
            rows.append([benchmark.key, r.case, str(r.connections), f"{r.comparison.ours} / {r.comparison.peer}",
                         _rps(r.ours.rps), _rps(r.peer.rps), _x(r.rps), _x(r.p99), _ratio_verdict(r)])
        if not found:
            rows.append([benchmark.key, "", "", "not measured", "", "", "", "", ""])
        for fact in (f for f in load.facts if f.benchmark == benchmark.key and f.met is not None):
            rows.append([benchmark.key, fact.label, "", "", fact.value, "", "", "", _verdict(fact.met)])
    return _table(("benchmark", "case", "c", "ours / peer", "ours req/s", "peer req/s", "req/s ratio",
                   "p99 ratio", "target"), rows)


def _section(benchmark: Benchmark, load: Load, chart: Path | None) -> list[str]:
    lines = [
        f"## {benchmark.title}",
        "",
        f"Issue {benchmark.issue}. {benchmark.about} Alone: `{benchmark.command}`.",
        "",
    ]
    if chart is not None:
        lines += [f"![{benchmark.title}]({chart.as_posix()})", ""]
    lines += _table(MEASUREMENT_HEADER, _measurement_rows(benchmark, load.measurements))
    notes = [f"CPU µs/req counts {benchmark.cpu_of}."] if benchmark.cpu_of else []
    notes += [f"Target ({c.ours} / {c.peer}): {c.target.text}." for c in benchmark.comparisons if c.target]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    rows = ratios(benchmark, load.measurements)
    if rows:
        lines += ["", *_table(RATIO_HEADER, _ratio_rows(rows))]
    facts = [f for f in load.facts if f.benchmark == benchmark.key]
    if facts:
        lines += ["", *_table(("figure", "value", "target", ""), _fact_rows(facts))]
    return lines + [""]


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in (header, *rows)]


def print_tables(benchmarks: Sequence[Benchmark], load: Load) -> None:
    """Print each benchmark's measurements, ratios and facts as plain text tables."""
    for benchmark in benchmarks:
        print(f"\n{benchmark.title}")
        print("\n".join(_text_table(MEASUREMENT_HEADER, _measurement_rows(benchmark, load.measurements))))
        rows = ratios(benchmark, load.measurements)
        if rows:
            print()
            print("\n".join(_text_table(RATIO_HEADER, _ratio_rows(rows))).replace("**", ""))
        facts = [f for f in load.facts if f.benchmark == benchmark.key]
        if facts:
            print()
            print("\n".join(_text_table(("figure", "value", "target", ""), _fact_rows(facts))).replace("**", ""))
