"""The four blocking checks of a decision, each ``(passed, actual, threshold)`` for asset-check metadata.

They recompute from the stored orders and targets rather than trusting the sizing code's own flags; the CVaR
check recomputes the book's scenario CVaR from the assessment's scenario matrix with its own formula (the
minimum of Rockafellar–Uryasev's objective over its breakpoints), not with the sizing code's estimator.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl

from mem_pipeline.decisions.types import TradeDecision
from mem_pipeline.risk.assessment import RiskAssessment
from mem_pipeline.risk.drawdown import increases_risk
from mem_pipeline.risk.limits import TOLERANCE


class CheckResult(NamedTuple):
    passed: bool
    actual: float
    threshold: float


def _book(decision: TradeDecision) -> pl.DataFrame:
    """Per symbol: the position after the orders (current +/- quantity), its price and current position."""
    signed = decision.orders.select(
        "symbol",
        pl.when(pl.col("side") == "buy").then(pl.col("quantity")).otherwise(-pl.col("quantity")).alias("traded"),
    )
    return (
        decision.targets.select("symbol", "reference_price", "current_position")
        .join(signed, on="symbol", how="left")
        .with_columns(
            (pl.col("current_position") + pl.col("traded").fill_null(0.0)).alias("position"),
        )
        .with_columns((pl.col("position") * pl.col("reference_price")).alias("notional"))
    )


def _ratio(value: float, cap: float) -> float:
    if cap > 0:
        return value / cap
    return 0.0 if value <= TOLERANCE else float("inf")


def check_orders_within_limits(decision: TradeDecision) -> CheckResult:
    """Largest utilisation of the per-symbol, gross and net caps by the book after the orders (<= 1)."""
    notional = _book(decision)["notional"].to_numpy()
    limits = decision.limits
    if notional.size == 0:
        return CheckResult(True, 0.0, 1.0)
    actual = max(
        _ratio(float(np.abs(notional).max()), limits.symbol_cap),
        _ratio(float(np.abs(notional).sum()), limits.gross_cap),
        _ratio(abs(float(notional.sum())), limits.net_cap),
    )
    return CheckResult(bool(actual <= 1 + TOLERANCE), float(actual), 1.0)


def scenario_cvar(scenario_returns: np.ndarray, notionals: np.ndarray, alpha: float) -> float:
    """CVaR of the book's scenario losses ``-(R w)``: ``min over zeta of zeta + sum (L - zeta)^+ / ((1 - alpha) T)``.
    The objective is convex and piecewise linear with breakpoints at the losses, so its minimum is at one of them."""
    losses = -(np.asarray(scenario_returns, dtype=np.float64) @ np.asarray(notionals, dtype=np.float64))
    if losses.size == 0:
        return 0.0
    excess = np.maximum(losses[None, :] - losses[:, None], 0.0).sum(axis=1)
    return float((losses + excess / ((1.0 - alpha) * losses.size)).min())


def check_cvar_within_budget(decision: TradeDecision, assessment: RiskAssessment) -> CheckResult:
    """Scenario CVaR of the book after the orders (currency) against the budget."""
    book = _book(decision).select("symbol", "notional")
    order = pl.DataFrame({"symbol": list(assessment.universe)}, schema={"symbol": pl.String()})
    notional = order.join(book, on="symbol", how="left", maintain_order="left")["notional"].fill_null(0.0).to_numpy()
    actual = scenario_cvar(assessment.scenarios.simple_returns, notional, decision.limits.cvar_alpha)
    budget = decision.limits.cvar_budget
    return CheckResult(bool(np.isfinite(actual) and actual <= budget * (1 + TOLERANCE)), actual, budget)


def check_finite_sizes(decision: TradeDecision) -> CheckResult:
    """Orders and targets with a NaN/infinite size, notional or cost, or a quantity off its lot (0 allowed)."""
    o = decision.orders
    values = [o[c].to_numpy() for c in ("quantity", "notional", "expected_cost_bps", "target_position")]
    values += [decision.targets[c].to_numpy() for c in ("target_position", "target_notional")]
    bad = int(sum((~np.isfinite(v)).sum() for v in values))
    lots = o["quantity"].to_numpy() / o["lot_size"].to_numpy()
    with np.errstate(invalid="ignore"):
        bad += int((np.abs(lots - np.round(lots)) > 1e-9).sum() + (o["quantity"].to_numpy() <= 0).sum())
    return CheckResult(bad == 0, float(bad), 0.0)


def check_no_new_risk_when_killed(decision: TradeDecision) -> CheckResult:
    """With the kill switch on: orders that add size or flip a side (must be 0). Off: trivially passes."""
    if not decision.limits.kill_switch:
        return CheckResult(True, 0.0, 0.0)
    book = _book(decision)
    n = int(increases_risk(book["position"].to_numpy(), book["current_position"].to_numpy()).sum())
    return CheckResult(n == 0, float(n), 0.0)


def run_checks(decision: TradeDecision, assessment: RiskAssessment) -> dict[str, CheckResult]:
    return {
        "orders_within_limits": check_orders_within_limits(decision),
        "cvar_within_budget": check_cvar_within_budget(decision, assessment),
        "finite_sizes": check_finite_sizes(decision),
        "no_new_risk_when_killed": check_no_new_risk_when_killed(decision),
    }
