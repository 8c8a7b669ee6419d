"""Signal model on the synthetic market: held-out scores with and without decision-memory weights.

Usage: python -m bench.bench_signal [n_symbols]

Builds the default synthetic market (params.yaml: a known reversal alpha) into a lake, runs dbt, then:

1. fits the signal model on the first 80% of dates (no weights) — its walk-forward out-of-sample calls and
   their outcomes go into a decision memory;
2. refits on the same dates with the memory's replay weights (``sample_weights``, for two settings of the
   priority exponent alpha and the IS correction beta);
3. scores every fit on the last 20% of dates, which none of them saw (after a 5-day embargo), against the
   base rate of the training rows: log-loss, Brier and ECE of the published probability, with fit times.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from bench.harness import machine
from mem_pipeline.core.params import section
from mem_pipeline.core.paths import Paths
from mem_pipeline.features.dbt_cli import dbt, read_table
from mem_pipeline.ingest.lake import write_partitions
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, generate_market
from mem_pipeline.memory.decision_memory import DecisionMemory, MemoryConfig, direction_decisions, row_weights
from mem_pipeline.models.signal import (
    DATE,
    LABEL,
    SignalConfig,
    brier,
    expected_calibration_error,
    fit_signal,
    log_loss,
    training_frame,
)

EMBARGO = 5
NOT_FEATURES = ("symbol", "trade_date", "close")


def _scores(p: np.ndarray, y: np.ndarray) -> str:
    return f"{log_loss(p, y):.5f} | {brier(p, y):.5f} | {expected_calibration_error(p, y):.4f}"


def main(n_symbols: int | None = None) -> None:
    config = SyntheticConfig.from_params_file()
    if n_symbols:
        config = config.replace(n_symbols=n_symbols)
    signal_config = SignalConfig.from_params(
        {k: v for k, v in section("models")["signal"].items() if k not in ("max_ece", "use_memory")}
    )
    with tempfile.TemporaryDirectory(prefix="mem-bench-signal-") as tmp:
        data_dir = Path(tmp) / "data"
        write_partitions(generate_market(config).bars(), Paths(data_dir).bars("synthetic"))
        dbt(data_dir, "run", dbt_vars={"source": "synthetic"})
        features = read_table(data_dir, "fct_features_daily")
        labels = read_table(data_dir, "fct_labels_daily")
    frame = training_frame(features, labels)
    columns = [c for c in features.columns if c not in NOT_FEATURES]
    dates = frame[DATE].unique().sort()
    cut = dates[int(0.8 * len(dates))]
    test_start = dates[int(0.8 * len(dates)) + EMBARGO + 1]
    train = frame.filter(pl.col("known_date") <= cut)  # outcomes known by the cut
    test = frame.filter(pl.col(DATE) >= test_start)
    y = test[LABEL].cast(pl.Float64).to_numpy()
    rows = [f"| base rate of the training rows | {_scores(np.full(len(y), train[LABEL].mean()), y)} | - | - |"]

    t0 = time.perf_counter()
    plain = fit_signal(train, columns, signal_config)
    plain_s = time.perf_counter() - t0
    rows.append(f"| without memory | {_scores(plain.predict_signal(test).to_numpy(), y)} | {plain_s:.1f} | - |")
    decisions, outcomes = direction_decisions(plain.oos, f"p_{plain.published}")
    for alpha, beta in ((0.6, 0.4), (1.0, 0.0)):
        memory = DecisionMemory(MemoryConfig(alpha=alpha, beta=beta))
        memory.record(decisions)
        memory.record_outcomes(outcomes)
        weights = row_weights(memory, train, cut)
        t0 = time.perf_counter()
        weighted = fit_signal(train, columns, signal_config, sample_weight=weights)
        seconds = time.perf_counter() - t0
        spread = f"{weights.min():.2f}..{weights.max():.2f}"
        p = weighted.predict_signal(test).to_numpy()
        rows.append(f"| with memory (alpha {alpha}, beta {beta}) | {_scores(p, y)} | {seconds:.1f} | {spread} |")

    print(f"## Signal model with and without decision memory ({config.n_symbols} synthetic symbols)")
    print(f"machine: {machine()}")
    print(
        f"train rows {train.height:,} (to {cut}), held-out rows {test.height:,} ({test_start}..{dates[-1]}), "
        f"published without memory: {plain.published}; reversal alpha {config.alpha.reversal}"
    )
    print("\n| fit | log-loss | Brier | ECE | fit s | weight range |\n|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
