"""Refit every model asset on 100 synthetic symbols x 10 years (target: all of them under 60 s on 2 cores).

Models: regimes, volatility, slippage, the signal model (walk-forward, 5 folds + the live fit) and the
decision memory that journals its calls.

Usage: python -m bench.bench_models

Builds the lake (ingest_window) and the dbt models once, then materializes each model asset through
Dagster in this process (throw-away data folder and instance), timing each and all three together.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

import dagster as dg

from assets.defs.models.assets import regime_model, slippage_model, vol_forecasts
from assets.defs.models.signal import decision_memory, signal_model
from assets.resources import LakeResource
from bench.harness import Timing, report
from mem_pipeline.core.params import section
from mem_pipeline.core.paths import Paths
from mem_pipeline.features.dbt_cli import dbt
from mem_pipeline.ingest.quality.rules import QualityConfig
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, SyntheticSource
from mem_pipeline.ingest.window import ingest_window

START, END = dt.date(2009, 1, 1), dt.date(2018, 12, 31)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mem-bench-models-") as tmp:
        data_dir = Path(tmp) / "data"
        config = SyntheticConfig.from_params(section("sources")["synthetic"]).replace(
            n_symbols=100, start=START, end=END
        )
        result = ingest_window(SyntheticSource(config), START, END, Paths(data_dir), QualityConfig())
        dbt(data_dir, "run", dbt_vars={"source": "synthetic"})
        resources = {"lake": LakeResource(data_dir=str(data_dir))}
        instance = dg.DagsterInstance.ephemeral()
        timings = []
        began = time.perf_counter()
        for asset in (regime_model, vol_forecasts, slippage_model, signal_model, decision_memory):
            t0 = time.perf_counter()
            assert dg.materialize([asset], resources=resources, instance=instance, run_config=QUIET).success
            timings.append(Timing(asset.key.to_user_string(), time.perf_counter() - t0, 1))
        timings.append(
            Timing(
                "all models (sequential)",
                time.perf_counter() - began,
                1,
                f"{result.rows_published:,} bars, 100 symbols, {START}..{END}; target < 60 s",
            )
        )
        report("Refit every model, 100 symbols x 10 years", timings)


if __name__ == "__main__":
    main()
