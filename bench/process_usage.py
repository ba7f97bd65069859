"""CPU time and memory of the process trees of the servers under load."""

from __future__ import annotations

from collections.abc import Iterable

import psutil


def _tree(pids: Iterable[int]) -> list[psutil.Process]:
    processes = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            processes += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return processes


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds of each process in the trees rooted at ``pids``."""
    seconds = {}
    for process in _tree(pids):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[process.pid] = times.user + times.system
    return seconds


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two ``cpu_seconds`` snapshots (processes born since count whole)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def rss_mb(pid: int) -> tuple[float, list[float]]:
    """Resident MB of the process ``pid`` and of each of its descendants."""
    root = psutil.Process(pid)
    children = []
    for child in root.children(recursive=True):
        try:
            children.append(child.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            continue
    return root.memory_info().rss / 2**20, children
