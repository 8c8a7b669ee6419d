"""``decide``: one day's trade decision from plain inputs (the asset loads them; this only computes).

Sizing per symbol: ``raw = kelly_fraction x f*(p_up, payoff_ratio) x regime multiplier x equity``
(``mem_pipeline.risk.kelly``), then ``mem_pipeline.risk.limits.constrain_book`` (kill switch, caps, CVaR
budget, lots, lot top-up). Orders are ``target - current``; each gets its expected cost from the cost model and a
schedule (``mem_pipeline.decisions.schedule``).

Universe: symbols with a signal plus symbols held. A held symbol without a signal, and a symbol with
fewer than ``min_history`` returns in the lookback, gets no new risk (raw target 0: it is closed).
Every symbol of the universe needs a complete features row (price, dollar volume, spread, rv) —
without a price there is neither an exposure to limit nor an order to size, so that raises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from mem_pipeline.core.schemas import ORDER_SCHEMA, POSITION_SCHEMA
from mem_pipeline.decisions.config import DecisionConfig
from mem_pipeline.decisions.schedule import choose_schedule
from mem_pipeline.decisions.types import TARGET_SCHEMA, DecisionError, Side, TradeDecision
from mem_pipeline.decisions.version import code_version, frame_digest, version_of
from mem_pipeline.risk.config import RiskConfig, RiskError
from mem_pipeline.risk.drawdown import DrawdownState
from mem_pipeline.risk.kelly import kelly_fraction
from mem_pipeline.risk.limits import RiskLimits, constrain_book
from mem_pipeline.risk.regime import regime_multiplier
from mem_pipeline.risk.scenarios import RiskModel, build_scenarios, check_not_after

FloatArray = NDArray[np.float64]
#: Columns of ``fct_features_daily`` a decision reads (``spread_est`` is a fraction of the mid price,
#: ``dollar_volume_20d`` currency per day, ``rv_20d`` daily vol).
FEATURE_COLUMNS = ("symbol", "close", "dollar_volume_20d", "spread_est", "rv_20d")
SIGNAL_COLUMNS = ("symbol", "p_up")  # payoff_ratio optional (1.0 when absent)
EQUITY_COLUMNS = ("trade_date", "equity")
REGIME_PREFIX = "p_regime_"
BPS = 1e4
#: ``(orders with the slippage FEATURES columns) -> expected cost in bps``, one per row; a polars frame
#: with ``expected_cost_bps`` (``FittedSlippage.predict``), a Series or an array.
CostModel = Callable[[pl.DataFrame], Any]


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


def latest_regime_probabilities(regime: pl.DataFrame | Sequence[float], decision_date: dt.date) -> list[float]:
    if not isinstance(regime, pl.DataFrame):
        return [float(p) for p in regime]
    columns = sorted(
        (c for c in regime.columns if c.startswith(REGIME_PREFIX)), key=lambda c: int(c[len(REGIME_PREFIX) :])
    )
    if not columns or regime.height == 0:
        raise DecisionError(f"regime: need a row with {REGIME_PREFIX}0..k-1 columns, got {regime.columns}")
    if "trade_date" in regime.columns:
        check_not_after(regime, "trade_date", decision_date, "regime probabilities")
        regime = regime.sort("trade_date")
    return [float(v) for v in regime.select(columns).row(-1)]


def equity_state(curve: pl.DataFrame | None, decision_date: dt.date, config: RiskConfig) -> DrawdownState:
    if curve is None:
        return DrawdownState.from_peak(config.account_equity, config.account_equity, config.kill_drawdown)
    _require(curve, EQUITY_COLUMNS, "equity curve")
    check_not_after(curve, "trade_date", decision_date, "equity curve")
    values = curve.sort("trade_date")["equity"].cast(pl.Float64).to_numpy()
    return DrawdownState.from_curve(values, config.kill_drawdown)


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


def _positions(positions: pl.DataFrame | None) -> dict[str, float]:
    if positions is None:
        return {}
    _require(positions, tuple(POSITION_SCHEMA), "positions")
    _unique_symbols(positions, "positions")
    frame = positions.select(pl.col("symbol").cast(pl.String), pl.col("quantity").cast(pl.Float64))
    q = frame["quantity"].to_numpy()
    if not np.isfinite(q).all():
        raise DecisionError("positions: quantities must be finite")
    return {s: float(v) for s, v in zip(frame["symbol"].to_list(), q, strict=True) if v != 0}


def _costs(cost_model: CostModel, frame: pl.DataFrame) -> FloatArray:
    out = cost_model(frame)
    if isinstance(out, pl.DataFrame):
        out = out["expected_cost_bps"]
    values = np.asarray(out.to_numpy() if isinstance(out, pl.Series) else out, dtype=np.float64).ravel()
    if values.shape != (frame.height,) or not np.isfinite(values).all():
        raise DecisionError(f"cost model: expected {frame.height} finite costs, got shape {values.shape}")
    return values


def decide(
    decision_date: dt.date,
    *,
    features: pl.DataFrame,
    signals: pl.DataFrame,
    returns: pl.DataFrame,
    vol_forecasts: pl.DataFrame | None,
    regime_probabilities: pl.DataFrame | Sequence[float],
    positions: pl.DataFrame | None,
    cost_model: CostModel,
    equity_curve: pl.DataFrame | None = None,
    lot_sizes: Mapping[str, float] | None = None,
    risk_config: RiskConfig | None = None,
    decision_config: DecisionConfig | None = None,
    data_versions: Mapping[str, str] | None = None,
    model_hashes: Mapping[str, str] | None = None,
) -> TradeDecision:
    """The trade decision for ``decision_date`` (see the module docstring).

    ``features``: one row per symbol, ``FEATURE_COLUMNS`` (the partition's ``fct_features_daily`` rows).
    ``signals``: ``symbol, p_up`` (calibrated) and optionally ``payoff_ratio``.
    ``returns``: ``symbol, trade_date, ret_1d`` history; ``vol_forecasts``: ``symbol, trade_date,
    vol_forecast`` history (None: plain historical CVaR); ``regime_probabilities``: the filtered
    probabilities (a frame with ``p_regime_*`` columns, its latest row is used, or a sequence).
    ``positions``: ``POSITION_SCHEMA``; ``equity_curve``: ``trade_date, equity`` (None: ``account_equity``,
    no drawdown). Every dated input must stop at ``decision_date`` (else ``RiskError``/``DecisionError``).
    """
    risk_config = risk_config or RiskConfig()
    decision_config = decision_config or DecisionConfig()
    lot_sizes = dict(lot_sizes or {})
    if any(not (np.isfinite(v) and v > 0) for v in lot_sizes.values()):
        raise DecisionError("lot_sizes: every lot size must be a positive number")

    _require(signals, SIGNAL_COLUMNS, "signals")
    _unique_symbols(signals, "signals")
    if "trade_date" in signals.columns:
        check_not_after(signals, "trade_date", decision_date, "signals")
    held = _positions(positions)
    universe = sorted(set(signals["symbol"].cast(pl.String).to_list()) | set(held))
    n = len(universe)

    probabilities = latest_regime_probabilities(regime_probabilities, decision_date)
    multiplier = regime_multiplier(probabilities, risk_config.regime_multipliers)
    state = equity_state(equity_curve, decision_date, risk_config)
    limits = RiskLimits.for_equity(risk_config, state.equity, kill_switch=state.kill_switch)

    feats = _features(features, universe, decision_date)
    prices = feats["close"]
    lots = np.array([lot_sizes.get(s, risk_config.lot_size) for s in universe], dtype=np.float64)
    current = np.array([held.get(s, 0.0) for s in universe], dtype=np.float64)
    off_lot = np.abs(current / lots - np.round(current / lots)) > 1e-9
    if off_lot.any():
        shown = [f"{universe[i]}={current[i]} (lot {lots[i]})" for i in np.flatnonzero(off_lot)[:10]]
        raise DecisionError(f"positions: not multiples of their lot size, reconcile the ledger first: {shown}")

    scenarios = build_scenarios(returns, vol_forecasts, universe, decision_date, risk_config)
    risk_model = RiskModel.from_scenarios(scenarios, risk_config.cvar_alpha)

    p_up, payoff = _signals(signals, universe)
    has_signal = np.isfinite(p_up)
    try:
        full_kelly = np.zeros(n)
        full_kelly[has_signal] = kelly_fraction(p_up[has_signal], payoff[has_signal])
    except RiskError as exc:
        raise DecisionError(f"signals: {exc}") from exc
    enough_history = scenarios.n_valid >= risk_config.min_history
    tradeable = has_signal & enough_history
    raw = np.where(tradeable, risk_config.kelly_fraction * full_kelly * multiplier * state.equity, 0.0)
    regime_bound = (multiplier < 1) & (full_kelly != 0)
    labels = np.where(
        ~has_signal, "no_signal", np.where(~enough_history, "no_history", np.where(regime_bound, "regime", "kelly"))
    ).astype(object)

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
        "data_versions": dict(sorted((data_versions or {}).items())),
        "model_hashes": dict(sorted((model_hashes or {}).items())),
        "params": {
            "risk": risk_config.to_params(),
            "decisions": decision_config.to_params(),
            "lot_sizes": dict(sorted(lot_sizes.items())),
        },
        "code_version": code_version(),
        "inputs": {
            "features": frame_digest(features),
            "signals": frame_digest(signals),
            "returns": frame_digest(returns),
            "vol_forecasts": frame_digest(vol_forecasts),
            "regime_probabilities": frame_digest(regime_probabilities)
            if isinstance(regime_probabilities, pl.DataFrame)
            else [float(p) for p in regime_probabilities],
            "positions": frame_digest(positions),
            "equity_curve": frame_digest(equity_curve),
        },
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
        "equity": state.equity,
        "equity_peak": state.peak,
        "drawdown": state.drawdown,
        "kill_switch": state.kill_switch,
        "regime_probabilities": probabilities,
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
