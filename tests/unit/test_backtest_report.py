"""The backtest report on hand-made books: what it deflates by, what it refuses to compare, and that it says
so when MEM loses."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from mem_pipeline.backtest.report import build_report, variant_table, verdicts
from mem_pipeline.backtest.run import FILL_SCHEMA, BacktestRun
from mem_pipeline.backtest.simulator import BacktestError


def _run(name: str, drift: float, seed: int, window: tuple[str, str] = ("2020-01-01", "2020-12-31")) -> BacktestRun:
    rng = np.random.default_rng(seed)
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(250)]
    equity = 10_000 * np.cumprod(1 + rng.normal(drift, 0.01, 250))
    daily = pl.DataFrame({"trade_date": days, "equity": equity, "cash": equity * 0.5, "gross_exposure": equity * 0.5,
                          "traded_notional": np.full(250, 100.0), "costs": np.full(250, 0.1)})  # fmt: skip
    signals = pl.DataFrame(
        {"trade_date": days, "symbol": ["A"] * 250, "p_up": rng.uniform(0.4, 0.6, 250),
         "reference_price": np.full(250, 10.0), "target_notional": rng.normal(0, 100, 250),
         "next_ret": rng.normal(0, 0.01, 250)}
    )  # fmt: skip
    info = {"window": list(window), "universe_digest": "u", "source": "synthetic", "universe": 1,
            "starting_equity": 10_000.0}  # fmt: skip
    return BacktestRun(name, daily, signals, pl.DataFrame({"trade_date": days}), pl.DataFrame(schema=FILL_SCHEMA), info)


def test_candidates_and_tuning_trials_are_deflated_and_baselines_are_not() -> None:
    runs = {"mem": _run("mem", 0.0002, 1), "static": _run("static", 0.0008, 2), "no_regime": _run("no_regime", 0, 3),
            "buy_and_hold": _run("buy_and_hold", 0.001, 4)}  # fmt: skip
    table, n_trials = variant_table(runs, tuning_sharpes=[0.01, -0.02, 0.03, 0.0])
    assert n_trials == 3 + 4  # mem, static, no_regime and the four trials; buy and hold was never a candidate
    rows = {r["variant"]: r for r in table.iter_rows(named=True)}
    assert math.isnan(rows["buy_and_hold"]["dsr"]) and math.isnan(rows["buy_and_hold"]["permutation_p"])
    assert 0 <= rows["mem"]["dsr"] <= rows["mem"]["psr"] <= 1  # deflating can only lower the PSR here
    said = verdicts(table)
    assert any(s.startswith("MEM loses to static") for s in said)
    assert any(s.startswith("MEM loses to buy_and_hold") for s in said)


def test_variants_of_different_windows_are_not_compared(tmp_path) -> None:
    runs = {"mem": _run("mem", 0, 1), "static": _run("static", 0, 2, ("2019-01-01", "2019-12-31"))}
    with pytest.raises(BacktestError, match="different windows"):
        build_report(runs, tmp_path)


def test_a_variant_that_never_trades_ties_and_claims_no_significance() -> None:
    """Flat equity has no return variation: no bootstrap interval, so no claim that intervals do not overlap."""
    flat = _run("mem", 0, 1)
    flat.daily = flat.daily.with_columns(pl.lit(10_000.0).alias("equity"), pl.lit(0.0).alias("gross_exposure"))
    still = _run("static", 0, 2)
    still.daily = flat.daily
    table, _ = variant_table({"mem": flat, "static": still, "buy_and_hold": _run("buy_and_hold", -0.001, 4)})
    said = verdicts(table)
    assert any(s.startswith("MEM ties with static") and "no bootstrap interval for MEM and static" in s for s in said)
    versus_hold = next(s for s in said if "buy_and_hold on Sharpe" in s)
    assert "no bootstrap interval for MEM:" in versus_hold and "do not overlap" not in versus_hold


def test_the_report_writes_each_variants_figures_for_dvc_and_no_wall_clock(tmp_path) -> None:
    import json

    runs = {"mem": _run("mem", 0.0004, 1), "static": _run("static", 0.0, 2)}
    build_report(runs, tmp_path / "a")
    figures = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert set(figures) == {"mem", "static"}
    # the Sharpe ratio from the equity curve by hand: mean / std of daily returns × √252
    equity = runs["mem"].daily["equity"].to_numpy()
    returns = np.diff(equity) / equity[:-1]
    assert figures["mem"]["sharpe"] == pytest.approx(returns.mean() / returns.std(ddof=1) * np.sqrt(252), rel=0.02)
    static = runs["static"].daily["equity"].to_numpy()
    assert figures["static"]["max_drawdown"] == pytest.approx(np.max(1 - static / np.maximum.accumulate(static)))
    build_report(runs, tmp_path / "b")
    for name in ("report.md", "metrics.json", "variants.csv"):  # written twice, the same bytes
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
