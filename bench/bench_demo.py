"""``make demo``'s main job from an installed environment: wall and CPU seconds of ``python -m assets.demo`` in a
fresh data folder and Dagster instance each run (install time is not included; ``make install`` is a no-op then).

Usage: python -m bench.bench_demo [--repeats 2]

CPU seconds are the demo process's and its children's (dbt runs in a subprocess), from ``resource.getrusage``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import machine
from mem_pipeline.core.paths import PROJECT_ROOT

STEPS = ("raw_bars", "dbt", "models", "decision", "execution", "backtest")


def run_once() -> tuple[float, float, str]:
    tmp = Path(tempfile.mkdtemp(prefix="mem-demo-"))
    try:
        home = tmp / "dagster_home"
        home.mkdir()
        shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "MEM_DATA_DIR": str(tmp / "data")}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "assets.demo"], env=env, cwd=PROJECT_ROOT, check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        steps = [line.strip() for line in out.splitlines() if line.startswith(STEPS)]
        return wall, cpu, " | ".join(s[:60] for s in steps)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"machine before: {machine()}")
    walls, cpus = [], []
    for i in range(args.repeats):
        wall, cpu, steps = run_once()
        walls.append(wall)
        cpus.append(cpu)
        print(f"run {i + 1}: {wall:.1f} s wall, {cpu:.1f} s CPU\n  {steps}", flush=True)
    print(f"machine after: {machine()}")
    print(f"make demo (installed): median {statistics.median(walls):.1f} s wall, {statistics.median(cpus):.1f} s CPU, "
          f"min {min(walls):.1f}, max {max(walls):.1f} ({args.repeats} runs)")  # fmt: skip


if __name__ == "__main__":
    main()
