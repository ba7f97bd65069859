"""PNG charts of a benchmark run: throughput and latency per system and concurrency level."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from benchmark import Benchmark  # noqa: E402
from measurement import Measurement, combined  # noqa: E402

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")


def chart(benchmark: Benchmark, measurements: Sequence[Measurement], path: Path) -> Path | None:
    """Write ``benchmark``'s chart to ``path``: requests/s on the left, p50 and p99 on the right.

    Bars are grouped by case and concurrency level, one colour per system (the rounds of
    a step combined). Returns
    ``path``, or None when nothing of the benchmark was measured.
    """
    found = {(m.case, m.connections, m.system): m
             for m in combined(measurements, benchmark.key) if m.measured}
    if not found:
        return None
    groups = sorted({(case, c) for case, c, _ in found},
                    key=lambda key: (benchmark.cases.index(key[0]), key[1]))
    width = 0.8 / len(benchmark.systems)
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, system in enumerate(benchmark.systems):
        xs = [g + (index - (len(benchmark.systems) - 1) / 2) * width for g in range(len(groups))]
        runs = [found.get((case, c, system)) for case, c in groups]
        colour = COLOURS[index % len(COLOURS)]
        throughput.bar(xs, [m.rps if m else 0 for m in runs], width, label=system, color=colour)
        latency.bar(xs, [m.p99_ms if m and m.p99_ms else 0 for m in runs], width, color=colour, alpha=0.35,
                    label=f"{system} p99")
        latency.bar(xs, [m.p50_ms if m and m.p50_ms else 0 for m in runs], width, color=colour,
                    label=f"{system} p50")
    labels = [f"{case}\nc={c}" if len(benchmark.cases) > 1 else f"c={c}" for case, c in groups]
    for axes, title, unit in ((throughput, "throughput", "requests/s"),
                              (latency, "latency (p50 dark, p99 light)", "ms, log scale")):
        axes.set_xticks(range(len(groups)), labels)
        axes.set_title(title)
        axes.set_ylabel(unit)
        axes.grid(axis="y", alpha=0.3)
    # p50 and p99 are often two orders of magnitude apart on a busy machine.
    latency.set_yscale("log")
    # Headroom above the bars for the legends.
    throughput.set_ylim(top=throughput.get_ylim()[1] * 1.25)
    latency.set_ylim(top=latency.get_ylim()[1] * 10)
    throughput.legend(fontsize="small")
    latency.legend(fontsize="small", ncols=2)
    figure.suptitle(benchmark.title, fontsize="medium")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
