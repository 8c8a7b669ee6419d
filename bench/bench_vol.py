"""Time per-symbol GARCH fitting (sequential vs 2 worker processes) and fit the real S&P 500.

Usage: python bench/bench_vol.py [--repeats 1] [--symbols 10,25,100] [--no-spawn]

* Synthetic: ``n`` symbols x 10 years (2009-2018) of daily log returns, GARCH(1,1)-t per symbol,
  timed sequentially, with 2 forked workers and (largest case) 2 spawned workers; then a warm-started
  refit on the same data. Parallel results are checked equal to the sequential ones.
* Real: ``arch.data.sp500`` Adj Close -> daily log returns 1999-2018, GARCH(1,1)-t and
  GJR-GARCH(1,1,1)-t; prints the parameters (arch's percent scale and daily units).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import resource
import statistics
import time

import numpy as np
import polars as pl

from bench.harness import Timing, report
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, generate_market
from mem_pipeline.models.volatility import FittedVol, VolConfig, fit_vol


def synthetic_returns(n_symbols: int, start: dt.date, end: dt.date) -> pl.DataFrame:
    return generate_market(SyntheticConfig(n_symbols=n_symbols, start=start, end=end)).log_returns()


def sp500_returns() -> pl.DataFrame:
    from arch.data import sp500

    close = sp500.load()["Adj Close"]
    close = close[(close.index >= "1999-01-01") & (close.index <= "2018-12-31")]
    frame = pl.DataFrame({"trade_date": close.index.to_numpy().astype("datetime64[D]"), "close": close.to_numpy()})
    return frame.select(pl.lit("SP500").alias("symbol"), "trade_date", pl.col("close").log().diff().alias("ret_1d"))


def cpu_seconds() -> float:
    """CPU time of this process plus its finished (waited-for) children: the work done, not the wait."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def time_fit(
    label: str, returns: pl.DataFrame, config: VolConfig, repeats: int, **kwargs: object
) -> tuple[Timing, float, FittedVol]:
    """Median wall seconds, median CPU seconds (all processes) and the last fit."""
    walls, cpus, fitted = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), cpu_seconds()
        fitted = fit_vol(returns, config, **kwargs)  # type: ignore[arg-type]
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    assert fitted is not None
    return Timing(label, statistics.median(walls), repeats), statistics.median(cpus), fitted


def bench_synthetic(sizes: list[int], repeats: int, spawn: bool) -> None:
    timings: list[Timing] = []
    config = VolConfig(model="garch")
    fit_vol(synthetic_returns(2, dt.date(2017, 1, 1), dt.date(2018, 12, 31)), config, workers=1)  # import arch
    for n in sizes:
        returns = synthetic_returns(n, dt.date(2009, 1, 1), dt.date(2018, 12, 31))
        timing, cpu, sequential = time_fit(f"{n} sym sequential", returns, config, repeats, workers=1)
        timings.append(dataclasses.replace(timing, extra=f"{returns.height:,} rows; cpu {cpu:.2f} s"))
        sequential_seconds = timing.seconds
        methods = ["fork", "spawn"] if spawn and n == max(sizes) else ["fork"]
        for method in methods:
            label = f"{n} sym 2 workers ({method})"
            timing, cpu, parallel = time_fit(label, returns, config, repeats, workers=2, start_method=method)
            assert parallel.params.equals(sequential.params), f"{label}: params differ from sequential"
            speedup = sequential_seconds / timing.seconds
            timings.append(dataclasses.replace(timing, extra=f"{speedup:.2f}x sequential; cpu {cpu:.2f} s"))
        began = time.perf_counter()
        refit = fit_vol(returns, config, previous=sequential, workers=1)
        elapsed = time.perf_counter() - began
        note = (
            f"{refit.metrics()['n_warm_started']}/{n} warm; mean iterations {refit.params['iterations'].mean():.1f}"
            f" vs {sequential.params['iterations'].mean():.1f} cold"
        )
        timings.append(Timing(f"{n} sym warm refit (sequential)", elapsed, 1, note))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    report(f"fit_vol GARCH(1,1)-t, 10 years of daily returns (load average {load})", timings)


def bench_sp500() -> None:
    returns = sp500_returns()
    print(
        f"\n## S&P 500 (arch.data.sp500 Adj Close), log returns {returns['trade_date'][1]} .. "
        f"{returns['trade_date'][-1]}, n = {returns.height - 1}"
    )
    for model in ("garch", "gjr"):
        fitted = fit_vol(returns, VolConfig(model=model), workers=1)
        assert fitted.failures.height == 0, fitted.failures
        p = fitted.params.row(0, named=True)
        scale = fitted.config.scale
        print(
            f"{model:>5}: mu={p['mu'] * scale:.4f}% omega={p['omega'] * scale**2:.4f}%^2 alpha={p['alpha']:.4f} "
            f"gamma={p['gamma']:.4f} beta={p['beta']:.4f} nu={p['nu']:.2f} persistence={p['persistence']:.4f} "
            f"loglik(pct)={p['loglik'] - p['n_obs'] * np.log(scale):.2f} iterations={p['iterations']}"
        )
        print(
            f"       daily units: mu={p['mu']:.3e} omega={p['omega']:.3e} uncond vol={p['uncond_vol']:.4f} "
            f"(annualised {p['uncond_vol'] * np.sqrt(252):.1%}); vol forecast for the day after "
            f"{p['last_date']}: {p['next_vol']:.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--symbols", default="10,25,100", help="comma-separated symbol counts")
    parser.add_argument("--no-spawn", action="store_true", help="skip the spawn-start case")
    args = parser.parse_args()
    bench_synthetic([int(s) for s in args.symbols.split(",")], args.repeats, not args.no_spawn)
    bench_sp500()


if __name__ == "__main__":
    main()
