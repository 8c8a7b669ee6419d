"""Time the synthetic market generator (generation only, no parquet, no ingest).

Usage: python bench/bench_synthetic.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, generate_market

CASES: dict[str, tuple[int, dt.date, dt.date]] = {
    "100 symbols x 10 years": (100, dt.date(2009, 1, 1), dt.date(2018, 12, 31)),
    "800 symbols x 14 years": (800, dt.date(2005, 1, 1), dt.date(2018, 12, 31)),
}


def time_case(config: SyntheticConfig, repeats: int) -> tuple[float, int]:
    """Median wall time of ``generate_market`` over ``repeats`` runs, and the rows generated."""
    timings = []
    rows = 0
    for _ in range(repeats):
        began = time.perf_counter()
        market = generate_market(config)
        timings.append(time.perf_counter() - began)
        rows = market.n_days * market.n_symbols
        del market
    return statistics.median(timings), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    base = SyntheticConfig()
    print(f"{'case':<26}{'rows':>12}{'median s':>11}{'rows/s':>14}")
    for label, (n_symbols, start, end) in CASES.items():
        config = base.replace(n_symbols=n_symbols, start=start, end=end)
        seconds, rows = time_case(config, args.repeats)
        print(f"{label:<26}{rows:>12,}{seconds:>11.3f}{rows / seconds:>14,.0f}")


if __name__ == "__main__":
    main()
