"""The day's risk limits and per-symbol risk, as a reviewable table (the ``risk_limits`` asset's content).

For each symbol with a complete features row: its next-day volatility forecast, the one-day CVaR of one
unit of account currency held long and short (filtered historical simulation when the GARCH forecast is
there, historical otherwise), and the largest notional the symbol cap and the portfolio CVaR budget allow
on their own. ``decide`` applies the same limits jointly (with correlations) when it sizes the book.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mem_pipeline.risk.config import RiskConfig
from mem_pipeline.risk.cvar import var_cvar
from mem_pipeline.risk.drawdown import DrawdownState
from mem_pipeline.risk.limits import RiskLimits
from mem_pipeline.risk.regime import regime_multiplier
from mem_pipeline.risk.scenarios import RiskModel, build_scenarios


@dataclass(frozen=True)
class RiskReport:
    decision_date: dt.date
    limits: RiskLimits
    regime_probabilities: list[float]
    regime_multiplier: float
    drawdown: DrawdownState
    shrinkage: float
    symbols: pl.DataFrame  # symbol, n_returns, vol_forecast, cvar_long_per_unit, cvar_short_per_unit, max_notional

    def summary(self) -> dict[str, Any]:
        return {
            **self.limits.to_dict(),
            "regime_probabilities": self.regime_probabilities,
            "regime_multiplier": self.regime_multiplier,
            "drawdown": self.drawdown.drawdown,
            "equity_peak": self.drawdown.peak,
            "ledoit_wolf_shrinkage": self.shrinkage,
            "n_symbols": self.symbols.height,
        }


def risk_report(
    decision_date: dt.date,
    symbols: list[str],
    returns: pl.DataFrame,
    vol_forecasts: pl.DataFrame | None,
    regime: pl.DataFrame | list[float],
    equity_curve: pl.DataFrame | None,
    config: RiskConfig,
) -> RiskReport:
    """Limits in force and per-symbol risk at ``decision_date`` (inputs stop at that date; the regime and
    equity inputs are read exactly as ``decide`` reads them)."""
    from mem_pipeline.decisions.decide import equity_state, latest_regime_probabilities

    regime_probabilities = latest_regime_probabilities(regime, decision_date)
    drawdown = equity_state(equity_curve, decision_date, config)
    limits = RiskLimits.for_equity(config, drawdown.equity, kill_switch=drawdown.kill_switch)
    scenarios = build_scenarios(returns, vol_forecasts, symbols, decision_date, config)
    model = RiskModel.from_scenarios(scenarios, config.cvar_alpha)
    x = scenarios.simple_returns
    if x.shape[1]:
        cvar_long = var_cvar(-x, config.cvar_alpha)[1]
        cvar_short = var_cvar(x, config.cvar_alpha)[1]
    else:
        cvar_long = cvar_short = np.zeros(0)
    worst = np.maximum(cvar_long, cvar_short)
    with np.errstate(divide="ignore", invalid="ignore"):
        by_budget = np.where(worst > 0, limits.cvar_budget / worst, np.inf)
    table = pl.DataFrame(
        {
            "symbol": list(scenarios.symbols),
            "n_returns": scenarios.n_valid,
            "vol_forecast": scenarios.next_vol,
            "cvar_long_per_unit": cvar_long,
            "cvar_short_per_unit": cvar_short,
            "max_notional": np.minimum(limits.symbol_cap, by_budget),
        }
    ).with_columns(pl.col("vol_forecast").fill_nan(None))
    return RiskReport(
        decision_date=decision_date,
        limits=limits,
        regime_probabilities=list(regime_probabilities),
        regime_multiplier=regime_multiplier(regime_probabilities, config.regime_multipliers),
        drawdown=drawdown,
        shrinkage=model.shrinkage,
        symbols=table,
    )
