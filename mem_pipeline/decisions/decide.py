"""``decide``: one day's trade decision, a pure function of (inputs, assessment, configs, cost model).

Sizing per symbol: ``raw = kelly_fraction x f*(p_up, payoff_ratio) x regime multiplier x equity``, or with
``risk.sizing: fixed`` ``fixed_fraction x regime multiplier x equity`` in the edge's direction, nothing where
``|p_up - 0.5| <= risk.min_edge`` (``mem_pipeline.risk.kelly.raw_notional``), then
``mem_pipeline.risk.limits.constrain_book`` (kill switch, caps, CVaR budget, lots, lot top-up) against the
day's ``RiskAssessment`` (limits, risk model, regime multiplier).
Orders are ``target - current``; each gets its expected cost from the cost model and a schedule
(``mem_pipeline.decisions.schedule``). The live asset and the backtest call the same function.

Universe: symbols with a signal plus symbols held (``DecisionInputs.universe``); the assessment must be of the
same universe. A held symbol without a signal, and a symbol with fewer than ``min_history`` returns in the
lookback, gets no new risk (raw target 0: it is closed). Every symbol of the universe needs a complete features
row (price, dollar volume, spread, rv) — without a price there is neither an exposure to limit nor an order to
size, so that raises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from mem_pipeline.core.orders import ORDER_SCHEMA, Side
from mem_pipeline.core.schemas import POSITION_SCHEMA
from mem_pipeline.decisions.config import DecisionConfig
from mem_pipeline.decisions.inputs import CostModel, DecisionInputs
from mem_pipeline.decisions.schedule import choose_schedule
from mem_pipeline.decisions.types import TARGET_SCHEMA, DecisionError, TradeDecision
from mem_pipeline.decisions.version import code_version, version_of
from mem_pipeline.risk.assessment import RiskAssessment, assess
from mem_pipeline.risk.config import RiskConfig, RiskError
from mem_pipeline.risk.kelly import kelly_fraction, raw_notional
from mem_pipeline.risk.limits import constrain_book
from mem_pipeline.risk.scenarios import check_not_after

FloatArray = NDArray[np.float64]
#: Columns of ``fct_features_daily`` a decision reads (``spread_est`` is a fraction of the mid price,
#: ``dollar_volume_20d`` currency per day, ``rv_20d`` daily vol).
FEATURE_COLUMNS = ("symbol", "close", "dollar_volume_20d", "spread_est", "rv_20d")
SIGNAL_COLUMNS = ("symbol", "p_up")  # payoff_ratio optional (1.0 when absent)
BPS = 1e4


def _require(frame: pl.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DecisionError(f"{where}: missing columns {missing} (has {frame.columns})")


def _unique_symbols(frame: pl.DataFrame, where: str) -> None:
    if frame["symbol"].null_count():
        raise DecisionError(f"{where}: symbol must not be null")
    dupes = frame.filter(pl.col("symbol").is_duplicated())["symbol"].unique().sort().to_list()
    if dupes:
        raise DecisionError(f"{where}: one row per symbol expected, duplicated: {dupes[:10]}")


def _features(features: pl.DataFrame, universe: list[str], decision_date: dt.date) -> dict[str, FloatArray]:
    _require(features, FEATURE_COLUMNS, "features")
    if "trade_date" in features.columns:
        check_not_after(features, "trade_date", decision_date, "features")
    _unique_symbols(features, "features")
    rows = pl.DataFrame({"symbol": universe}, schema={"symbol": pl.String()}).join(
        features.select(pl.col("symbol").cast(pl.String), *[pl.col(c).cast(pl.Float64) for c in FEATURE_COLUMNS[1:]]),
        on="symbol",
        how="left",
        maintain_order="left",
    )
    bad = rows.filter(
        pl.any_horizontal(*[pl.col(c).is_null() | ~pl.col(c).is_finite() for c in FEATURE_COLUMNS[1:]])
        | (pl.col("close") <= 0)
        | (pl.col("dollar_volume_20d") <= 0)
        | (pl.col("spread_est") < 0)
        | (pl.col("rv_20d") < 0)
    )["symbol"].to_list()
    if bad:
        raise DecisionError(
            f"features: {len(bad)} symbols with a signal or a position lack a complete features row "
            f"(close > 0, dollar_volume_20d > 0, spread_est >= 0, rv_20d >= 0, all finite): {bad[:10]}"
        )
    return {c: rows[c].to_numpy() for c in FEATURE_COLUMNS[1:]}


def _signals(signals: pl.DataFrame, universe: list[str]) -> tuple[FloatArray, FloatArray]:
    rows = pl.DataFrame({"symbol": universe}, schema={"symbol": pl.String()}).join(
        signals.select(
            pl.col("symbol").cast(pl.String),
            pl.col("p_up").cast(pl.Float64),
            (pl.col("payoff_ratio") if "payoff_ratio" in signals.columns else pl.lit(1.0)).cast(pl.Float64).alias("b"),
        ),
        on="symbol",
        how="left",
        maintain_order="left",
    )
    return rows["p_up"].to_numpy().astype(np.float64), rows["b"].to_numpy().astype(np.float64)


def _positions(inputs: DecisionInputs) -> dict[str, float]:
    if inputs.positions is not None:
        _require(inputs.positions, tuple(POSITION_SCHEMA), "positions")
        _unique_symbols(inputs.positions, "positions")
    held = inputs.held
    if not np.isfinite(list(held.values())).all():
        raise DecisionError("positions: quantities must be finite")
    return held


def _costs(cost_model: CostModel, frame: pl.DataFrame) -> FloatArray:
    out = cost_model(frame)
    if isinstance(out, pl.DataFrame):
        out = out["expected_cost_bps"]
    values = np.asarray(out.to_numpy() if isinstance(out, pl.Series) else out, dtype=np.float64).ravel()
    if values.shape != (frame.height,) or not np.isfinite(values).all():
        raise DecisionError(f"cost model: expected {frame.height} finite costs, got shape {values.shape}")
    return values


def _check_inputs(inputs: DecisionInputs) -> None:
    signals = inputs.signals
    _require(signals, SIGNAL_COLUMNS, "signals")
    _unique_symbols(signals, "signals")
    if "trade_date" in signals.columns:
        check_not_after(signals, "trade_date", inputs.decision_date, "signals")
    if any(not (np.isfinite(v) and v > 0) for v in inputs.lot_sizes.values()):
        raise DecisionError("lot_sizes: every lot size must be a positive number")


def assess_day(inputs: DecisionInputs, risk_config: RiskConfig) -> RiskAssessment:
    """The risk assessment of the inputs' universe (what ``risk_limits`` stores)."""
    _check_inputs(inputs)
    _positions(inputs)
    return assess(
        inputs.decision_date,
        inputs.universe,
        inputs.returns,
        inputs.vol_forecasts,
        inputs.regime_probabilities,
        inputs.equity_curve,
        risk_config,
    )


def decide_day(
    inputs: DecisionInputs,
    cost_model: CostModel,
    risk_config: RiskConfig | None = None,
    decision_config: DecisionConfig | None = None,
) -> TradeDecision:
    """Assess and decide in one call (a loop over days, a test): ``decide(inputs, assess_day(inputs), ...)``."""
    risk_config = risk_config or RiskConfig()
    return decide(inputs, assess_day(inputs, risk_config), cost_model, risk_config, decision_config)


def decide(
    inputs: DecisionInputs,
    assessment: RiskAssessment,
    cost_model: CostModel,
    risk_config: RiskConfig | None = None,
    decision_config: DecisionConfig | None = None,
) -> TradeDecision:
    """The trade decision of ``inputs.decision_date`` sized against ``assessment`` (see the module docstring).

    ``inputs.features``: one row per symbol, ``FEATURE_COLUMNS``; ``inputs.signals``: ``symbol, p_up``
    (calibrated) and optionally ``payoff_ratio``. Every dated input must stop at the decision date.
    """
    risk_config = risk_config or RiskConfig()
    decision_config = decision_config or DecisionConfig()
    decision_date = inputs.decision_date
    _check_inputs(inputs)
    held = _positions(inputs)
    universe = inputs.universe
    if assessment.decision_date != decision_date or list(assessment.universe) != universe:
        raise DecisionError(
            f"the risk assessment is for {assessment.decision_date} and {len(assessment.universe)} symbols; the "
            f"decision for {decision_date} needs its own universe of {len(universe)} (assess the same inputs)"
        )
    n = len(universe)
    lot_sizes = inputs.lot_sizes
    limits = assessment.limits
    multiplier = assessment.regime_multiplier
    scenarios = assessment.scenarios
    risk_model = assessment.risk_model

    feats = _features(inputs.features, universe, decision_date)
    prices = feats["close"]
    lots = np.array([lot_sizes.get(s, risk_config.lot_size) for s in universe], dtype=np.float64)
    current = np.array([held.get(s, 0.0) for s in universe], dtype=np.float64)
    off_lot = np.abs(current / lots - np.round(current / lots)) > 1e-9
    if off_lot.any():
        shown = [f"{universe[i]}={current[i]} (lot {lots[i]})" for i in np.flatnonzero(off_lot)[:10]]
        raise DecisionError(f"positions: not multiples of their lot size, reconcile the ledger first: {shown}")

    p_up, payoff = _signals(inputs.signals, universe)
    has_signal = np.isfinite(p_up)
    try:
        full_kelly = np.zeros(n)
        full_kelly[has_signal] = kelly_fraction(p_up[has_signal], payoff[has_signal])
        sized = np.zeros(n)
        sized[has_signal] = raw_notional(p_up[has_signal], payoff[has_signal], limits.equity, risk_config, multiplier)
    except RiskError as exc:
        raise DecisionError(f"signals: {exc}") from exc
    enough_history = scenarios.n_valid >= risk_config.min_history
    tradeable = has_signal & enough_history
    raw = np.where(tradeable, sized, 0.0)
    regime_bound = (multiplier < 1) & (sized != 0)
    sized_by = np.where(regime_bound, "regime", risk_config.sizing)
    labels = np.where(~has_signal, "no_signal", np.where(~enough_history, "no_history", sized_by)).astype(object)

    sizing = constrain_book(raw, current, prices, lots, risk_model, limits, labels, top_up=risk_config.lot_top_up)
    target = sizing.target_units
    delta = target - current
    quantity = np.round(np.abs(delta) / lots) * lots
    ordered = quantity > 0

    vol_next = np.where(np.isfinite(scenarios.next_vol), scenarios.next_vol, feats["rv_20d"])
    sigma = np.maximum(vol_next, decision_config.min_sigma)
    adv_units = feats["dollar_volume_20d"] / prices
    participation = quantity / adv_units
    idx = np.flatnonzero(ordered)
    side = np.where(delta > 0, str(Side.BUY), str(Side.SELL)).astype(object)
    cost_input = pl.DataFrame(
        {
            "symbol": [universe[i] for i in idx],
            "size_over_adv": participation[idx],
            "spread_bps": feats["spread_est"][idx] * BPS,
            "sigma": sigma[idx],
            "participation": participation[idx],
            "side": side[idx].tolist(),
        },
        schema={
            "symbol": pl.String(),
            "size_over_adv": pl.Float64(),
            "spread_bps": pl.Float64(),
            "sigma": pl.Float64(),
            "participation": pl.Float64(),
            "side": pl.String(),
        },
    )
    costs = _costs(cost_model, cost_input) if idx.size else np.empty(0)
    schedules, slices = choose_schedule(participation[idx], decision_config)

    manifest = {
        "decision_date": decision_date.isoformat(),
        "data_versions": dict(sorted(inputs.data_versions.items())),
        "model_hashes": dict(sorted(inputs.model_hashes.items())),
        "params": {
            "risk": risk_config.to_params(),
            "decisions": decision_config.to_params(),
            "lot_sizes": dict(sorted(lot_sizes.items())),
        },
        "code_version": code_version(),
        "inputs": inputs.digests(),
        "risk_assessment": assessment.digest(),
    }
    version = version_of(manifest)

    orders = pl.DataFrame(
        {
            "decision_version": [version] * idx.size,
            "decision_date": [decision_date] * idx.size,
            "symbol": [universe[i] for i in idx],
            "side": side[idx].tolist(),
            "quantity": quantity[idx],
            "lot_size": lots[idx],
            "reference_price": prices[idx],
            "notional": quantity[idx] * prices[idx],
            "current_position": current[idx],
            "target_position": target[idx],
            "expected_cost_bps": costs,
            "schedule": schedules.tolist(),
            "n_slices": slices,
            "binding_limit": sizing.binding[idx].tolist(),
        },
        schema=ORDER_SCHEMA,
    )
    symbol_cvar = risk_model.symbol_cvar(sizing.target_notional)
    targets = pl.DataFrame(
        {
            "symbol": universe,
            "reference_price": prices,
            "lot_size": lots,
            "p_up": p_up,
            "payoff_ratio": payoff,
            "kelly_full": full_kelly,
            "vol_forecast": scenarios.next_vol,
            "raw_notional": raw,
            "current_position": current,
            "target_position": target,
            "target_notional": sizing.target_notional,
            "symbol_cvar": symbol_cvar,
            "binding_limit": sizing.binding.tolist(),
        },
        schema=TARGET_SCHEMA,
    ).with_columns(pl.col("p_up", "payoff_ratio", "vol_forecast").fill_nan(None))

    book = sizing.target_notional
    report: dict[str, Any] = {
        "n_symbols": n,
        "n_orders": int(idx.size),
        "n_tradeable": int(tradeable.sum()),
        "equity": assessment.drawdown.equity,
        "equity_peak": assessment.drawdown.peak,
        "drawdown": assessment.drawdown.drawdown,
        "kill_switch": assessment.drawdown.kill_switch,
        "regime_probabilities": list(assessment.regime_probabilities),
        "regime_multiplier": multiplier,
        "portfolio_cvar": sizing.cvar,
        "portfolio_cvar_historical": risk_model.historical_cvar(book),
        "portfolio_cvar_gaussian_lw": risk_model.gaussian_cvar(book),
        "cvar_before_limits": sizing.cvar_before_limits,
        "cvar_budget": limits.cvar_budget,
        "cvar_method": risk_config.cvar_method,
        "fhs_share": float(scenarios.filtered.mean()) if n else 0.0,
        "n_scenarios": len(scenarios.dates),
        "scenario_start": scenarios.dates[0].isoformat() if scenarios.dates else None,
        "scenario_end": scenarios.dates[-1].isoformat() if scenarios.dates else None,
        "lw_shrinkage": risk_model.shrinkage,
        "gross_exposure": float(np.abs(book).sum()),
        "net_exposure": float(book.sum()),
        "traded_notional": float((quantity * prices).sum()),
        "expected_cost": float((costs * quantity[idx] * prices[idx]).sum() / BPS) if idx.size else 0.0,
        "rounding_repairs": sizing.repairs,
        "lot_top_ups": sizing.top_up_lots,
        "lot_top_up_refused": sizing.top_up_refused,
        "binding_counts": {
            k: int(v) for k, v in zip(*np.unique(sizing.binding.astype(str), return_counts=True), strict=True)
        }
        if n
        else {},
    }
    return TradeDecision(version, decision_date, orders, targets, limits, report, manifest)
