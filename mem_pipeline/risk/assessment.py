"""The day's risk assessment: the limits in force and the risk model a decision is sized against.

``assess`` turns one day's inputs (returns and volatility forecasts up to the day, the filtered regime
probabilities, the equity curve) into a ``RiskAssessment``: the drawdown state and kill switch, the regime
multiplier, the limits scaled to equity (``RiskLimits``), the scenario set and its ``RiskModel`` over the day's
universe, and a per-symbol table for review (next-day vol, CVaR of one unit long and short, the largest
notional the symbol cap and the CVaR budget allow on their own).

The ``risk_limits`` asset stores it (``save``); ``trade_decisions`` and the pre-trade gate read the stored
limits (``load``). The scenario set is derived data: ``load`` rebuilds it from the same stored inputs with
``build_scenarios`` and refuses a store whose universe or per-symbol table no longer matches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mem_pipeline.core.files import atomic_write_bytes, atomic_write_parquet
from mem_pipeline.risk.config import RiskConfig, RiskError
from mem_pipeline.risk.cvar import var_cvar
from mem_pipeline.risk.drawdown import DrawdownState
from mem_pipeline.risk.limits import RiskLimits
from mem_pipeline.risk.regime import regime_multiplier
from mem_pipeline.risk.scenarios import RiskModel, ScenarioSet, build_scenarios, check_not_after, require_columns

REGIME_PREFIX = "p_regime_"
EQUITY_COLUMNS = ("trade_date", "equity")
SUMMARY_FILE = "limits.json"
SYMBOLS_FILE = "symbols.parquet"


def latest_regime_probabilities(regime: pl.DataFrame | Sequence[float], decision_date: dt.date) -> list[float]:
    """The filtered probabilities of the latest row dated ``<= decision_date`` (``p_regime_0..k-1`` columns),
    or the given sequence."""
    if not isinstance(regime, pl.DataFrame):
        return [float(p) for p in regime]
    columns = sorted(
        (c for c in regime.columns if c.startswith(REGIME_PREFIX)), key=lambda c: int(c[len(REGIME_PREFIX) :])
    )
    if not columns or regime.height == 0:
        raise RiskError(f"regime: need a row with {REGIME_PREFIX}0..k-1 columns, got {regime.columns}")
    if "trade_date" in regime.columns:
        check_not_after(regime, "trade_date", decision_date, "regime probabilities")
        regime = regime.sort("trade_date")
    return [float(v) for v in regime.select(columns).row(-1)]


def equity_state(curve: pl.DataFrame | None, decision_date: dt.date, config: RiskConfig) -> DrawdownState:
    """Drawdown state at the end of the equity curve (``None``: ``account_equity``, no drawdown)."""
    if curve is None:
        return DrawdownState.from_peak(config.account_equity, config.account_equity, config.kill_drawdown)
    require_columns(curve, EQUITY_COLUMNS, "equity curve")
    check_not_after(curve, "trade_date", decision_date, "equity curve")
    values = curve.sort("trade_date")["equity"].cast(pl.Float64).to_numpy()
    return DrawdownState.from_curve(values, config.kill_drawdown)


@dataclass(frozen=True, eq=False)
class RiskAssessment:
    decision_date: dt.date
    limits: RiskLimits
    drawdown: DrawdownState
    regime_probabilities: tuple[float, ...]
    regime_multiplier: float
    scenarios: ScenarioSet  # over the day's universe, in universe order
    risk_model: RiskModel
    symbols: pl.DataFrame  # symbol, n_returns, vol_forecast, cvar_long_per_unit, cvar_short_per_unit, max_notional

    @property
    def universe(self) -> tuple[str, ...]:
        return self.scenarios.symbols

    def summary(self) -> dict[str, Any]:
        """What ``save`` writes to ``limits.json`` (and the asset shows): everything but the scenario matrix."""
        return {
            "decision_date": self.decision_date.isoformat(),
            **self.limits.to_dict(),
            "regime_probabilities": list(self.regime_probabilities),
            "regime_multiplier": self.regime_multiplier,
            "drawdown": self.drawdown.drawdown,
            "equity_peak": self.drawdown.peak,
            "kill_drawdown": self.drawdown.threshold,
            "ledoit_wolf_shrinkage": self.risk_model.shrinkage,
            "n_symbols": self.symbols.height,
            "universe": list(self.universe),
        }

    def digest(self) -> str:
        """Content hash of ``summary()`` (the limits, drawdown and regime a decision is sized against)."""
        text = json.dumps(self.summary(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def save(self, folder: Path) -> str:
        """Write ``limits.json`` and ``symbols.parquet`` under ``folder`` atomically; return a digest of both."""
        table = atomic_write_parquet(self.symbols, folder / SYMBOLS_FILE)
        text = json.dumps(self.summary(), sort_keys=True, indent=1, allow_nan=False) + "\n"
        summary = atomic_write_bytes(text.encode(), folder / SUMMARY_FILE)
        return hashlib.sha256((table + summary).encode()).hexdigest()

    @classmethod
    def load(
        cls,
        folder: Path,
        returns: pl.DataFrame,
        vol_forecasts: pl.DataFrame | None,
        config: RiskConfig,
    ) -> RiskAssessment:
        """The stored assessment of a day: its limits, drawdown and regime as stored; the scenario set rebuilt
        from the same inputs it was assessed on (``RiskError`` if the store does not match them)."""
        path = folder / SUMMARY_FILE
        if not path.exists():
            raise RiskError(f"no stored risk assessment at {folder}: materialize risk_limits for the day first")
        stored = json.loads(path.read_text())
        day = dt.date.fromisoformat(stored["decision_date"])
        limits = RiskLimits(**{k: stored[k] for k in RiskLimits.__dataclass_fields__})
        drawdown = DrawdownState(
            equity=limits.equity,
            peak=stored["equity_peak"],
            drawdown=stored["drawdown"],
            threshold=stored["kill_drawdown"],
            kill_switch=limits.kill_switch,
        )
        scenarios = build_scenarios(returns, vol_forecasts, stored["universe"], day, config)
        model = RiskModel.from_scenarios(scenarios, limits.cvar_alpha)
        table = pl.read_parquet(folder / SYMBOLS_FILE)
        rebuilt = _symbol_table(scenarios, limits, config)
        if not rebuilt.equals(table):
            raise RiskError(f"{folder}: the stored per-symbol risk differs from the inputs it was assessed on")
        return cls(
            decision_date=day,
            limits=limits,
            drawdown=drawdown,
            regime_probabilities=tuple(stored["regime_probabilities"]),
            regime_multiplier=stored["regime_multiplier"],
            scenarios=scenarios,
            risk_model=model,
            symbols=table,
        )


def _symbol_table(scenarios: ScenarioSet, limits: RiskLimits, config: RiskConfig) -> pl.DataFrame:
    x = scenarios.simple_returns
    if x.shape[1]:
        cvar_long = var_cvar(-x, config.cvar_alpha)[1]
        cvar_short = var_cvar(x, config.cvar_alpha)[1]
    else:
        cvar_long = cvar_short = np.zeros(0)
    worst = np.maximum(cvar_long, cvar_short)
    with np.errstate(divide="ignore", invalid="ignore"):
        by_budget = np.where(worst > 0, limits.cvar_budget / worst, np.inf)
    return pl.DataFrame(
        {
            "symbol": list(scenarios.symbols),
            "n_returns": scenarios.n_valid,
            "vol_forecast": scenarios.next_vol,
            "cvar_long_per_unit": cvar_long,
            "cvar_short_per_unit": cvar_short,
            "max_notional": np.minimum(limits.symbol_cap, by_budget),
        },
        schema={
            "symbol": pl.String(),
            "n_returns": pl.Int64(),
            "vol_forecast": pl.Float64(),
            "cvar_long_per_unit": pl.Float64(),
            "cvar_short_per_unit": pl.Float64(),
            "max_notional": pl.Float64(),
        },
    ).with_columns(pl.col("vol_forecast").fill_nan(None))


def assess(
    decision_date: dt.date,
    universe: Sequence[str],
    returns: pl.DataFrame,
    vol_forecasts: pl.DataFrame | None,
    regime: pl.DataFrame | Sequence[float],
    equity_curve: pl.DataFrame | None,
    config: RiskConfig,
) -> RiskAssessment:
    """The risk assessment of ``universe`` at ``decision_date`` (every dated input stops at that date)."""
    probabilities = latest_regime_probabilities(regime, decision_date)
    multiplier = regime_multiplier(probabilities, config.regime_multipliers)
    drawdown = equity_state(equity_curve, decision_date, config)
    limits = RiskLimits.for_equity(config, drawdown.equity, kill_switch=drawdown.kill_switch)
    scenarios = build_scenarios(returns, vol_forecasts, list(universe), decision_date, config)
    return RiskAssessment(
        decision_date=decision_date,
        limits=limits,
        drawdown=drawdown,
        regime_probabilities=tuple(probabilities),
        regime_multiplier=multiplier,
        scenarios=scenarios,
        risk_model=RiskModel.from_scenarios(scenarios, config.cvar_alpha),
        symbols=_symbol_table(scenarios, limits, config),
    )
