"""Ingest benchmarks: synthetic-source throughput, and a one-year backfill through Dagster (one yearly partition).

Usage: python bench/bench_ingest.py [--repeats 3] [--skip-backfill]

Throughput times ``ingest_window`` (fetch + Great Expectations gate + atomic parquet publish) on a market
generated beforehand (its generation is timed separately by bench_synthetic.py), into a fresh folder each run.
The backfill comparison runs ``raw_bars`` through Dagster on a throw-away SQLite instance.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bench.harness import Timing, median_time, report
from mem_pipeline.core.params import load_params
from mem_pipeline.core.paths import Paths
from mem_pipeline.ingest.quality.rules import QualityConfig
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, SyntheticSource, cached_market
from mem_pipeline.ingest.window import ingest_window

SCALES = {
    "100 symbols x 10 years": (100, dt.date(2009, 1, 1), dt.date(2018, 12, 31)),
    "800 symbols x 14 years": (800, dt.date(2005, 1, 1), dt.date(2018, 12, 31)),
}


def throughput(repeats: int) -> list[Timing]:
    timings = []
    for label, (n, start, end) in SCALES.items():
        config = SyntheticConfig.from_params(load_params()["sources"]["synthetic"]).replace(
            n_symbols=n, start=start, end=end
        )
        source = SyntheticSource(config)
        cached_market(config)  # generation is not part of ingest
        rows = source.fetch(start, end).height
        workdir = Path(tempfile.mkdtemp(prefix="mem-bench-"))
        counter = iter(range(10**6))

        def run(source=source, start=start, end=end, workdir=workdir, counter=counter) -> None:
            result = ingest_window(source, start, end, Paths(workdir / str(next(counter))), QualityConfig())
            assert result.gate.passed, result.gate.summary()

        seconds = median_time(run, repeats)
        timings.append(Timing(f"ingest {label}", seconds, repeats, f"{rows:,} rows, {rows / seconds:,.0f} rows/s"))
    return timings


BACKFILL_SCRIPT = """
import sys, time, dagster as dg
from assets.definitions import defs
from assets.run import QUIET
job = defs.resolve_job_def("ingest")
instance = dg.DagsterInstance.get()
began = time.perf_counter()
assert job.execute_in_process(instance=instance, run_config=QUIET, partition_key="2017").success
print(f"{time.perf_counter() - began:.3f} 1")
"""


def backfill() -> list[Timing]:
    """One year (2017, 260 trading days) of a 100-symbol synthetic market through Dagster: one run, one yearly
    partition (with a partition per day, Dagster's two events per partition cost more than the data work)."""
    params = load_params()
    params["source"] = "synthetic"
    params["sources"]["synthetic"].update(n_symbols=100, start="2016-01-01", end="2017-12-31")
    timings = []
    modes = (("single", "backfill 2017: one run, one yearly partition"),)
    for mode, label in modes:
        with tempfile.TemporaryDirectory(prefix="mem-bench-") as tmp:
            params_file = Path(tmp) / "params.yaml"
            params_file.write_text(yaml.safe_dump(params))
            env = {
                **os.environ,
                "MEM_PARAMS": str(params_file),
                "MEM_DATA_DIR": f"{tmp}/data",
                "DAGSTER_HOME": f"{tmp}/dagster",
                "MEM_SOURCE": "synthetic",
            }
            Path(env["DAGSTER_HOME"]).mkdir()
            out = subprocess.run(
                [sys.executable, "-c", BACKFILL_SCRIPT, mode], env=env, check=True, capture_output=True, text=True
            ).stdout.split()
            timings.append(Timing(label, float(out[0]), 1, f"{out[1]} partitions"))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-backfill", action="store_true")
    args = parser.parse_args()
    report("Ingest throughput (synthetic source)", throughput(args.repeats))
    if not args.skip_backfill:
        report("One-year backfill through Dagster", backfill())


if __name__ == "__main__":
    main()
