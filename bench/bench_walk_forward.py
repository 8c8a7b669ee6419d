"""The walk-forward replay of the decision kernel on 100 synthetic symbols, 10 years of decisions (target: under
10 minutes on 2 cores with the default refit cadence), and where the time goes.

Usage: python -m bench.bench_walk_forward [n_symbols] [years] [refit]

Builds a synthetic market one year longer than the replay (warm-up for features and the first fits) through dbt
into a throw-away folder (timed apart: not part of the replay), reads it once (``History.read``), then replays
every trading day. Reports wall and CPU seconds, the split between refits, gathering inputs, deciding and
simulating.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import machine
from mem_pipeline.backtest.walk_forward import History, WalkForwardConfig, replay
from mem_pipeline.core.paths import Paths
from mem_pipeline.decisions.sample_inputs import sqrt_cost_model
from mem_pipeline.features.dbt_cli import dbt
from mem_pipeline.ingest import lake
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, generate_market


def main(n_symbols: int = 100, years: int = 10, refit: str = "quarterly") -> None:
    first = dt.date(2008, 1, 1)
    start, end = dt.date(2009, 1, 1), dt.date(2009 + years - 1, 12, 31)
    config = dataclasses.replace(SyntheticConfig.from_params_file(), n_symbols=n_symbols, start=first, end=end)
    with tempfile.TemporaryDirectory(prefix="mem-bench-wf-") as tmp:
        data_dir = Path(tmp) / "data"
        t0 = time.perf_counter()
        lake.write_partitions(generate_market(config).bars(), Paths(data_dir).bars("synthetic"))
        dbt(data_dir, "run", dbt_vars={"source": "synthetic"})
        history = History.read(Paths(data_dir), "synthetic", end)
        built = time.perf_counter() - t0
        wall, cpu = time.perf_counter(), time.process_time()
        run = replay(history, start, end, sqrt_cost_model, walk=WalkForwardConfig(refit=refit))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    equity = run.equity()
    print(f"## Walk-forward replay: {n_symbols} symbols, {len(run.days)} decision days ({start}..{end}), {refit}")
    print(f"machine: {machine()}")
    print(f"market build (synthetic bars → lake → dbt → History.read, not in the replay): {built:.1f} s")
    print(f"replay: {wall:.1f} s wall, {cpu:.1f} s CPU (this process; fit_vol may fork workers)")
    print(
        "split: " + ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in run.timings.items()),
        f"({len(run.refits)} refits)",
    )
    orders = sum(o.height for o in run.orders.values())
    print(f"orders: {orders:,}; fills: {len(run.result.fills):,}; final equity {equity['equity'][-1]:,.2f}")


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 100,
        int(sys.argv[2]) if len(sys.argv) > 2 else 10,
        sys.argv[3] if len(sys.argv) > 3 else "quarterly",
    )
