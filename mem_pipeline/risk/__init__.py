"""Risk: CVaR (historical and filtered historical simulation), Ledoit–Wolf covariance, fractional Kelly,
regime multipliers, exposure caps and the drawdown kill switch. Pure numpy/polars; no orchestration."""

from mem_pipeline.risk.config import RiskConfig, RiskError
from mem_pipeline.risk.cvar import cvar, fhs_scenarios, gaussian_cvar, portfolio_cvar, ru_objective, var_cvar
from mem_pipeline.risk.drawdown import DrawdownState, increases_risk, reduce_only
from mem_pipeline.risk.kelly import kelly_fraction, kelly_notional, raw_notional
from mem_pipeline.risk.limits import BookSizing, RiskLimits, constrain_book
from mem_pipeline.risk.regime import regime_multiplier
from mem_pipeline.risk.scenarios import RiskModel, ScenarioSet, build_scenarios

__all__ = [
    "BookSizing",
    "DrawdownState",
    "RiskConfig",
    "RiskError",
    "RiskLimits",
    "RiskModel",
    "ScenarioSet",
    "build_scenarios",
    "constrain_book",
    "cvar",
    "fhs_scenarios",
    "gaussian_cvar",
    "increases_risk",
    "kelly_fraction",
    "kelly_notional",
    "raw_notional",
    "portfolio_cvar",
    "reduce_only",
    "regime_multiplier",
    "ru_objective",
    "var_cvar",
]
