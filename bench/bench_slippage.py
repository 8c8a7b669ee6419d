"""Slippage model: fit time on 200,000 simulated fills, and the test-split MAE table.

Usage: python -m bench.bench_slippage [--fills 200000] [--repeats 1]

Fills come from ``simulate_fills`` on a seeded 50-symbol x 2000-business-day synthetic market (default
impact truth: delta = 0.6, so the square-root law is misspecified). ``fit_slippage`` fits three LightGBM
models (mean, p90, p95; single thread, deterministic) and the closed-form square-root baseline on the
train dates and scores them on the latest 25 % of dates. Market generation and fill simulation are not
timed. The noise floor is the MAE of the true expected cost: no model can beat it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from bench.harness import Timing, median_time, report
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, generate_market, simulate_fills
from mem_pipeline.models.slippage import SlippageConfig, fit_slippage, time_split

N_SYMBOLS, N_DAYS = 50, 2000
START = dt.date(2008, 1, 1)
MARKET_SEED, FILLS_SEED = 7, 17


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fills", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    end = np.busday_offset(np.datetime64(START), N_DAYS - 1).item()
    market = generate_market(SyntheticConfig(seed=MARKET_SEED, n_symbols=N_SYMBOLS, start=START, end=end))
    fills = simulate_fills(market, args.fills, seed=FILLS_SEED)
    config = SlippageConfig()

    fitted = None

    def fit() -> None:
        nonlocal fitted
        fitted = fit_slippage(fills, config)

    fit_seconds = median_time(fit, repeats=args.repeats)
    assert fitted is not None
    test = time_split(fills, config.test_fraction)[1]
    began = time.perf_counter()
    fitted.predict(test)
    predict_seconds = time.perf_counter() - began

    m = fitted.metrics()
    report(
        f"Slippage model, {args.fills:,} fills ({N_SYMBOLS} symbols x {N_DAYS} days)",
        [
            Timing(
                "fit_slippage (3 LightGBM models + sqrt law)",
                fit_seconds,
                args.repeats,
                f"{m['n_train']:,} train fills, {config.n_estimators} trees x {config.num_leaves} leaves, 1 thread",
            ),
            Timing("predict (mean, p90, p95)", predict_seconds, 1, f"{m['n_test']:,} test orders"),
        ],
    )
    floor = m["noise_floor_mae"]
    print()
    print(f"## Test split: {m['test_start']} .. {m['test_end']}, {m['n_test']:,} fills")
    print("| model | MAE bps | RMSE bps | MAE / floor | MAE vs true cost bps |")
    print("|---|---|---|---|---|")
    print(
        f"| LightGBM ({config.objective}) | {m['mae_model']:.4f} | {m['rmse_model']:.4f} "
        f"| {m['mae_ratio_to_floor']:.4f} | {m['oracle_mae_model']:.4f} |"
    )
    print(
        f"| square-root law (Y={m['baseline_y']:.4f}) | {m['mae_baseline']:.4f} | {m['rmse_baseline']:.4f} "
        f"| {m['baseline_mae_ratio_to_floor']:.4f} | {m['oracle_mae_baseline']:.4f} |"
    )
    print(f"| noise floor (true expected cost) | {floor:.4f} | | 1.0000 | 0 |")
    print()
    print(
        f"quantile coverage: p90 {m['coverage_p90']:.4f}, p95 {m['coverage_p95']:.4f}; "
        f"rows rearranged for monotone quantiles: {m['quantile_rearranged_share']:.4%}"
    )


if __name__ == "__main__":
    main()
