"""Time the Markov-switching regime model, and look at what it finds in the real S&P 500.

1. Fit time of a 2-regime model on 5,000 synthetic market days (equal-weighted mean log return of
   30 symbols), median over ``--repeats`` fits, plus the time of the Hamilton filter on them.
2. The S&P 500 (``arch.data.sp500``, adjusted close -> daily log returns, 1999-2018): fit time, the
   fitted regimes, and whether Sep-Dec 2008 is mostly the high-volatility regime (share of days
   with filtered ``p_high > 0.5``).

Usage: python bench/bench_regime.py [--repeats 3] [--starts 5] [--plot regimes.png]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

import numpy as np
import polars as pl

from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, generate_market
from mem_pipeline.models.regime import FittedRegime, RegimeConfig, fit_regime, plot_regimes

N_POINTS = 5_000
CRISIS = (dt.date(2008, 9, 1), dt.date(2008, 12, 31))


def synthetic_returns(n_points: int) -> pl.DataFrame:
    start = dt.date(2000, 1, 3)
    end = np.busday_offset(np.datetime64(start), n_points - 1, roll="forward").item()
    market = generate_market(SyntheticConfig().replace(n_symbols=30, start=start, end=end))
    log_close = np.log(market.close)
    log_returns = np.diff(log_close, axis=0, prepend=np.log(market.initial_price)[None, :])
    dates = pl.Series(market.dates.astype("datetime64[D]")).cast(pl.Date)
    return pl.DataFrame({"trade_date": dates, "mkt_ret": log_returns.mean(axis=1)})


def sp500_returns() -> pl.DataFrame:
    from arch.data import sp500

    close = sp500.load()["Adj Close"]
    dates = pl.Series(close.index.to_numpy().astype("datetime64[D]")).cast(pl.Date)
    frame = pl.DataFrame({"trade_date": dates, "close": close.to_numpy()})
    return frame.select("trade_date", pl.col("close").log().diff().alias("mkt_ret")).drop_nulls()


def timed_fit(returns: pl.DataFrame, config: RegimeConfig, repeats: int) -> tuple[FittedRegime, float]:
    samples, fitted = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        fitted = fit_regime(returns, config)
        samples.append(time.perf_counter() - began)
    assert fitted is not None
    return fitted, statistics.median(samples)


def describe(fitted: FittedRegime) -> None:
    m = fitted.metrics()
    print(
        f"  loglik {m['loglik']:.1f}  aic {m['aic']:.1f}  bic {m['bic']:.1f}  "
        f"n_obs {m['n_obs']}  starts converged {m['n_converged']}/{m['n_starts']}"
    )
    print(f"  {'regime':<8}{'mean/yr':>10}{'vol/yr':>10}{'daily vol':>11}{'p_stay':>9}{'duration d':>12}{'share':>8}")
    for i in range(fitted.k_regimes):
        print(
            f"  {i:<8}{m[f'regime_{i}_mean_annual']:>10.2%}{m[f'regime_{i}_vol_annual']:>10.2%}"
            f"{m[f'regime_{i}_vol']:>11.4f}{m[f'regime_{i}_stay_prob']:>9.4f}"
            f"{m[f'regime_{i}_expected_duration_days']:>12.1f}{m[f'regime_{i}_stationary_share']:>8.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--starts", type=int, default=RegimeConfig().n_starts)
    parser.add_argument("--plot", type=Path, default=None, help="also save the S&P 500 regime plot here")
    args = parser.parse_args()
    config = RegimeConfig(k_regimes=2, n_starts=args.starts, seed=0)

    synthetic = synthetic_returns(N_POINTS)
    fitted, seconds = timed_fit(synthetic, config, args.repeats)
    began = time.perf_counter()
    fitted.filtered_probabilities(synthetic)
    filter_seconds = time.perf_counter() - began
    print(f"synthetic market, {synthetic.height:,} days, 2 regimes, {config.n_starts} starts:")
    print(
        f"  fit {seconds:.2f} s (median of {args.repeats}; {seconds / config.n_starts:.2f} s per start), "
        f"Hamilton filter {filter_seconds * 1e3:.1f} ms"
    )
    describe(fitted)

    returns = sp500_returns()
    fitted, seconds = timed_fit(returns, config, args.repeats)
    probs = fitted.filtered_probabilities(returns)
    high = f"p_regime_{fitted.k_regimes - 1}"
    print(
        f"\nS&P 500 adjusted close, daily log returns {fitted.start_date} .. {fitted.end_date} "
        f"({fitted.n_obs:,} days): fit {seconds:.2f} s (median of {args.repeats})"
    )
    describe(fitted)
    crisis = probs.filter(pl.col("trade_date").is_between(*CRISIS))
    share = float((crisis[high] > 0.5).mean())
    overall = float((probs[high] > 0.5).mean())
    verdict = "yes" if share > 0.5 else "no"
    print(
        f"  Sep-Dec 2008: {share:.1%} of {crisis.height} days have filtered p_high > 0.5 "
        f"(all days: {overall:.1%}) -> mostly the high-volatility regime: {verdict}"
    )
    if args.plot is not None:
        print(f"  plot: {plot_regimes(returns, probs, args.plot)}")


if __name__ == "__main__":
    main()
