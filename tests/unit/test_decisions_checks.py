"""The blocking checks pass on real decisions and fail on decisions that break each rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from mem_pipeline.decisions.checks import (
    check_cvar_within_budget,
    check_finite_sizes,
    check_no_new_risk_when_killed,
    check_orders_within_limits,
    run_checks,
    scenario_cvar,
)
from mem_pipeline.decisions.sample_inputs import DECISION_DATE, decide_frames, make_inputs, sqrt_cost_model
from mem_pipeline.risk import RiskConfig, portfolio_cvar


def _decided(drawdown: float = 0.0):
    inputs = make_inputs(n_symbols=20, seed=21, held_share=0.5, drawdown=drawdown)
    config = RiskConfig(max_symbol_exposure=2_000, max_gross_exposure=10_000, cvar_budget=0.1)
    return decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, risk_config=config, **inputs)


def _decision(drawdown: float = 0.0):
    return _decided(drawdown)[0]


def _bump_first_order(decision, factor: float):
    orders = decision.orders.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.col("quantity") * factor).otherwise(pl.col("quantity"))
    )
    return dataclasses.replace(decision, orders=orders)


def test_checks_pass_on_a_decision() -> None:
    results = run_checks(*_decided())
    assert all(r.passed for r in results.values()), results
    within = results["orders_within_limits"]
    assert 0 <= within.actual <= within.threshold == 1.0


def test_an_order_past_a_cap_fails_the_limits_check() -> None:
    decision = _decision()
    limits = dataclasses.replace(decision.limits, symbol_cap=1.0)
    result = check_orders_within_limits(dataclasses.replace(decision, limits=limits))
    assert not result.passed and result.actual > 1.0


def test_the_check_cvar_by_hand() -> None:
    # losses 1, 2, 3, 4 at alpha 0.5: the mean of the worst half, 3.5; at 0.75 the worst one, 4
    pnl = -np.array([[1.0], [2.0], [3.0], [4.0]])
    assert scenario_cvar(pnl, np.array([1.0]), 0.5) == pytest.approx(3.5)
    assert scenario_cvar(pnl, np.array([1.0]), 0.75) == pytest.approx(4.0)
    # alpha 0.6 of 4 scenarios: VaR is the 3rd loss (3), CVaR = 3 + (4 - 3) / (0.4 * 4) = 3.625
    assert scenario_cvar(pnl, np.array([1.0]), 0.6) == pytest.approx(3.625)


def test_the_check_recomputes_cvar_and_agrees_with_the_sizing_estimator() -> None:
    decision, assessment = _decided()
    result = check_cvar_within_budget(decision, assessment)
    book = decision.targets["target_notional"].to_numpy()
    expected = portfolio_cvar(assessment.scenarios.simple_returns, book, decision.limits.cvar_alpha)
    assert result.passed and result.actual == pytest.approx(expected, rel=1e-9) and result.actual > 0


def test_cvar_above_budget_fails() -> None:
    decision, assessment = _decided()
    # every order forty times larger: the book's CVaR grows past the budget the sizing fitted it into
    bumped = dataclasses.replace(decision, orders=decision.orders.with_columns(pl.col("quantity") * 40))
    result = check_cvar_within_budget(bumped, assessment)
    assert not result.passed and result.actual > result.threshold == decision.limits.cvar_budget


def test_nan_and_off_lot_sizes_fail() -> None:
    decision = _decision()
    nan = dataclasses.replace(decision, orders=decision.orders.with_columns(pl.col("notional") * float("nan")))
    assert check_finite_sizes(nan).actual == decision.orders.height
    # half a lot more on the first order (a factor like 1.5 would land on a lot again for an even quantity)
    off_lot = dataclasses.replace(
        decision,
        orders=decision.orders.with_columns(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(pl.col("quantity") + 0.5 * pl.col("lot_size"))
            .otherwise(pl.col("quantity"))
        ),
    )
    assert not check_finite_sizes(off_lot).passed


def test_an_order_adding_risk_under_the_kill_switch_fails() -> None:
    decision = _decision(drawdown=0.2)
    assert decision.limits.kill_switch and check_no_new_risk_when_killed(decision).passed
    # the first order reduces a position; tripling it overshoots through zero (a flip = new risk)
    flipped = _bump_first_order(decision, 3.0)
    first = decision.orders.row(0, named=True)
    assert abs(first["target_position"]) < abs(first["current_position"])
    result = check_no_new_risk_when_killed(flipped)
    assert not result.passed and result.actual >= 1
