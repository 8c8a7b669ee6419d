"""Tiny benchmark harness: medians of repeated timings, printed as a table with ratios to a baseline."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    label: str
    seconds: float  # median
    runs: int
    extra: str = ""


def median_time(fn: Callable[[], object], repeats: int = 3, setup: Callable[[], object] | None = None) -> float:
    samples = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def machine() -> str:
    import os

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load} (1, 5, 15 min)"
    )


def report(title: str, timings: list[Timing], baseline: str | None = None) -> str:
    base = next((t.seconds for t in timings if t.label == baseline), None)
    header = ["| case | median s | runs | ratio | notes |", "|---|---|---|---|---|"]
    lines = [f"## {title}", f"machine: {machine()}", "", *header]
    for t in timings:
        ratio = f"{base / t.seconds:.1f}x" if base and t.label != baseline else ("baseline" if base else "")
        lines.append(f"| {t.label} | {t.seconds:.3f} | {t.runs} | {ratio} | {t.extra} |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text
