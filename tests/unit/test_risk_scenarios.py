"""Scenario building from long tables: the window, the alignment of each return with the forecast made
the day before, the fallback to historical returns, and the Ledoit–Wolf x normal CVaR of the risk model."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from mem_pipeline.decisions.sample_inputs import business_days
from mem_pipeline.risk import RiskConfig, RiskError, RiskModel, build_scenarios

DAY = dt.date(2024, 3, 28)


def _tables(n_days: int = 120, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dates = np.array(business_days(DAY, n_days), dtype="datetime64[D]")
    sigma = np.exp(rng.normal(np.log(0.01), 0.4, (n_days + 1, 2)))  # sigma[t] = vol of day t's return
    z = rng.standard_t(5, (n_days, 2))
    r = z * sigma[:n_days]
    returns = pl.DataFrame(
        {"symbol": ["A", "B"] * n_days, "trade_date": np.repeat(dates, 2), "ret_1d": r.ravel()},
        schema={"symbol": pl.String, "trade_date": pl.Date, "ret_1d": pl.Float64},
    )
    # the forecast made on day t is the vol of day t + 1
    vols = pl.DataFrame(
        {"symbol": ["A", "B"] * n_days, "trade_date": np.repeat(dates, 2), "vol_forecast": sigma[1:].ravel()},
        schema={"symbol": pl.String, "trade_date": pl.Date, "vol_forecast": pl.Float64},
    )
    return returns, vols, z, sigma


def test_each_return_is_standardised_by_the_forecast_of_the_day_before() -> None:
    returns, vols, z, sigma = _tables()
    config = RiskConfig(lookback_days=100, min_history=50)
    s = build_scenarios(returns, vols, ["A", "B"], DAY, config)
    assert len(s.dates) == 100 and s.dates[-1] == DAY
    np.testing.assert_allclose(s.next_vol, sigma[-1])
    np.testing.assert_allclose(np.log1p(s.simple_returns), z[-100:] * sigma[-1], rtol=1e-10)
    assert s.filtered.all()


def test_historical_method_and_missing_forecasts_use_raw_returns() -> None:
    returns, vols, z, sigma = _tables()
    raw = (z * sigma[:-1])[-100:]
    hist = build_scenarios(returns, vols, ["A", "B"], DAY, RiskConfig(lookback_days=100, cvar_method="historical"))
    np.testing.assert_allclose(np.log1p(hist.simple_returns), raw, rtol=1e-10)
    only_a = build_scenarios(
        returns, vols.filter(pl.col("symbol") == "A"), ["A", "B"], DAY, RiskConfig(lookback_days=100)
    )
    assert only_a.filtered.tolist() == [True, False]
    np.testing.assert_allclose(np.log1p(only_a.simple_returns[:, 1]), raw[:, 1], rtol=1e-10)


def test_lookahead_and_short_histories_raise() -> None:
    returns, vols, _, _ = _tables()
    with pytest.raises(RiskError, match="after the decision date"):
        build_scenarios(returns, vols, ["A"], DAY - dt.timedelta(days=1), RiskConfig())
    with pytest.raises(RiskError, match="min_history"):
        build_scenarios(returns.tail(40), None, ["A"], DAY, RiskConfig(min_history=60))


def test_risk_model_takes_the_larger_of_scenario_and_shrunk_normal_cvar() -> None:
    returns, vols, _, _ = _tables(n_days=260, seed=3)
    s = build_scenarios(returns, vols, ["A", "B"], DAY, RiskConfig())
    model = RiskModel.from_scenarios(s, 0.975)
    w = np.array([1_000.0, -400.0])
    sd = float(np.sqrt(w @ model.covariance @ w))
    assert model.gaussian_cvar(w) == pytest.approx(sd * stats.norm.pdf(stats.norm.ppf(0.975)) / 0.025)
    assert model.cvar(w) == max(model.gaussian_cvar(w), model.historical_cvar(w))

    def ru_minimum(losses: np.ndarray) -> float:  # brute force over the kinks of F(zeta)
        return min(z + np.maximum(losses - z, 0).mean() / 0.025 for z in losses)

    assert model.historical_cvar(w) == pytest.approx(ru_minimum(-(s.simple_returns @ w)), rel=1e-12)
    short_b = model.symbol_cvar(w)[1]
    assert short_b == pytest.approx(ru_minimum(400 * s.simple_returns[:, 1]), rel=1e-12)
    assert model.symbol_cvar(w)[0] == pytest.approx(ru_minimum(-1_000 * s.simple_returns[:, 0]), rel=1e-12)
