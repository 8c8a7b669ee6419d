"""Seeded inputs for ``decide`` (tests and benchmarks): a one-factor market with time-varying vol, and a
one-call ``decide_frames`` over keyword frames."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from mem_pipeline.core.schemas import POSITION_SCHEMA
from mem_pipeline.decisions.config import DecisionConfig
from mem_pipeline.decisions.decide import assess_day, decide
from mem_pipeline.decisions.inputs import CostModel, DecisionInputs
from mem_pipeline.decisions.types import TradeDecision
from mem_pipeline.risk.assessment import RiskAssessment
from mem_pipeline.risk.config import RiskConfig

DECISION_DATE = dt.date(2024, 6, 28)


def business_days(end: dt.date, n: int) -> list[dt.date]:
    days: list[dt.date] = []
    day = end
    while len(days) < n:
        if day.weekday() < 5:
            days.append(day)
        day -= dt.timedelta(days=1)
    return days[::-1]


def sqrt_cost_model(orders: pl.DataFrame) -> pl.DataFrame:
    """Square-root law with Y = 0.7: a deterministic stand-in for ``FittedSlippage.predict``."""
    cost = 0.5 * orders["spread_bps"] + 0.7 * orders["sigma"] * 1e4 * orders["size_over_adv"].sqrt()
    return pl.DataFrame({"expected_cost_bps": cost})


def make_inputs(
    n_symbols: int = 20,
    n_days: int = 260,
    seed: int = 0,
    decision_date: dt.date = DECISION_DATE,
    held_share: float = 0.3,
    drawdown: float = 0.0,
) -> dict[str, Any]:
    """Keyword arguments for ``decide`` (without configs and cost model)."""
    rng = np.random.default_rng(seed)
    dates = business_days(decision_date, n_days)
    symbols = [f"S{i:04d}" for i in range(n_symbols)]
    beta = rng.uniform(0.5, 1.5, n_symbols)
    idio = rng.uniform(0.008, 0.03, n_symbols)
    factor_vol = 0.01 * np.exp(0.4 * np.sin(np.arange(n_days) / 25.0))
    factor = rng.standard_t(5, n_days) * factor_vol / np.sqrt(5 / 3)
    eps = rng.standard_t(5, (n_days, n_symbols)) * idio / np.sqrt(5 / 3)
    rets = factor[:, None] * beta + eps
    sigma = np.sqrt((factor_vol[:, None] * beta) ** 2 + idio**2)  # the true conditional vol of each day
    # vol forecast made on day t for day t + 1 (the last row is the forecast for the day after the decision)
    forecast = np.vstack([sigma[1:], sigma[-1:]]) * rng.uniform(0.9, 1.1, (n_days, n_symbols))
    long_dates = np.repeat(np.array(dates, dtype="datetime64[D]"), n_symbols)
    long_symbols = np.tile(symbols, n_days)
    returns = pl.DataFrame(
        {"symbol": long_symbols, "trade_date": long_dates, "ret_1d": rets.ravel()},
        schema={"symbol": pl.String, "trade_date": pl.Date, "ret_1d": pl.Float64},
    )
    vol = pl.DataFrame(
        {"symbol": long_symbols, "trade_date": long_dates, "vol_forecast": forecast.ravel()},
        schema={"symbol": pl.String, "trade_date": pl.Date, "vol_forecast": pl.Float64},
    )
    close = np.exp(rng.uniform(np.log(5), np.log(400), n_symbols))
    features = pl.DataFrame(
        {
            "symbol": symbols,
            "trade_date": [decision_date] * n_symbols,
            "close": close,
            "dollar_volume_20d": close * np.exp(rng.uniform(np.log(2e3), np.log(2e6), n_symbols)),
            "spread_est": rng.uniform(2e-4, 3e-3, n_symbols),
            "rv_20d": rets[-20:].std(axis=0, ddof=1),
        }
    )
    signals = pl.DataFrame(
        {
            "symbol": symbols,
            "p_up": np.clip(rng.normal(0.5, 0.05, n_symbols), 0.01, 0.99),
            "payoff_ratio": np.exp(rng.normal(0, 0.2, n_symbols)),
        }
    )
    held = rng.random(n_symbols) < held_share
    quantity = np.where(held, np.round(rng.normal(0, 300, n_symbols) / close), 0.0)
    positions = pl.DataFrame(
        {"symbol": [s for s, h in zip(symbols, held, strict=True) if h], "quantity": quantity[held]},
        schema=POSITION_SCHEMA,
    )
    curve = 10_000 * np.exp(np.cumsum(rng.normal(0.0003, 0.004, 60)))
    curve[-1] = curve.max() * (1 - drawdown) if drawdown else curve[-1]
    equity_curve = pl.DataFrame({"trade_date": dates[-60:], "equity": curve})
    regime = pl.DataFrame({"trade_date": dates[-3:], "p_regime_0": [0.9, 0.8, 0.7], "p_regime_1": [0.1, 0.2, 0.3]})
    return {
        "features": features,
        "signals": signals,
        "returns": returns,
        "vol_forecasts": vol,
        "regime_probabilities": regime,
        "positions": positions,
        "equity_curve": equity_curve,
        "data_versions": {"fct_features_daily": "abc", "int_bars__returns": "def"},
        "model_hashes": {"signal": "s1", "volatility": "v1", "regime": "r1", "slippage": "c1"},
    }


def sample_inputs(
    decision_date: dt.date = DECISION_DATE, *, lot_sizes: dict[str, float] | None = None, **frames: Any
) -> DecisionInputs:
    """``DecisionInputs`` from the keyword frames of ``make_inputs`` (or any subset of ``DecisionInputs`` fields)."""
    return DecisionInputs(decision_date=decision_date, lot_sizes=dict(lot_sizes or {}), **frames)


def decide_frames(
    decision_date: dt.date = DECISION_DATE,
    *,
    cost_model: CostModel,
    risk_config: RiskConfig | None = None,
    decision_config: DecisionConfig | None = None,
    lot_sizes: dict[str, float] | None = None,
    **frames: Any,
) -> tuple[TradeDecision, RiskAssessment]:
    """Assess and decide keyword frames in one call: ``(decision, the assessment it was sized against)``."""
    risk_config = risk_config or RiskConfig()
    inputs = sample_inputs(decision_date, lot_sizes=lot_sizes, **frames)
    assessment = assess_day(inputs, risk_config)
    return decide(inputs, assessment, cost_model, risk_config, decision_config), assessment
