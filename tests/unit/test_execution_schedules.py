"""Child-order schedules: TWAP, VWAP, Almgren–Chriss against the closed form, lot rounding, slice costs."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from execution_support import order_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from mem_pipeline.core.orders import OrderError, orders_from_frame
from mem_pipeline.execution.errors import ExecutionError
from mem_pipeline.execution.ids import client_order_id
from mem_pipeline.execution.schedules import (
    MarketStats,
    ScheduleConfig,
    ac_kappa,
    ac_trajectory,
    plan_children,
    round_to_lots,
    schedule_weights,
)
from mem_pipeline.models.slippage import FEATURES


def parent(**kw: object):
    return orders_from_frame(order_frame("v1", ["AAA"], **kw))[0]


def test_twap_splits_evenly_and_gives_the_remainder_to_the_first_slices() -> None:
    children = plan_children(parent(quantity=10, n_slices=3))
    assert [c.quantity for c in children] == [4.0, 3.0, 3.0]
    assert [c.slice_index for c in children] == [0, 1, 2]
    assert [c.client_id for c in children] == [client_order_id("v1", "AAA", j) for j in range(3)]
    half_lots = plan_children(parent(quantity=2.5, lot_size=0.5, n_slices=2))
    assert [c.quantity for c in half_lots] == [1.5, 1.0]


def test_vwap_follows_the_documented_u_shaped_profile_or_a_given_one() -> None:
    # u = 1/6, 1/2, 5/6 -> 1 + 2 (2u - 1)^2 = 17/9, 1, 17/9
    raw = np.array([17 / 9, 1.0, 17 / 9])
    np.testing.assert_allclose(schedule_weights("vwap", 3), raw / raw.sum())
    np.testing.assert_allclose(schedule_weights("vwap", 4, profile=[1, 3, 3, 1]), [0.125, 0.375, 0.375, 0.125])
    children = plan_children(parent(quantity=80, schedule="vwap", n_slices=4), profile=[1, 3, 3, 1])
    assert [c.quantity for c in children] == [10.0, 30.0, 30.0, 10.0]
    with pytest.raises(ExecutionError, match="vwap profile"):
        schedule_weights("vwap", 3, profile=[1, 2])


def test_almgren_chriss_matches_the_closed_form_and_its_difference_equation() -> None:
    lam, sigma, eta, n = 2.0, 0.03, 4e-4, 10
    kappa = ac_kappa(lam, sigma, eta, n)
    tau = 1.0 / n
    kappa_tilde_sq = lam * sigma**2 / eta  # 4.5
    # The discrete optimality condition of Almgren & Chriss (2000): 2 (cosh(kappa tau) - 1) / tau^2 = kappa~^2.
    assert 2 * (math.cosh(kappa * tau) - 1) / tau**2 == pytest.approx(kappa_tilde_sq)
    x = ac_trajectory(1000.0, kappa, n)
    t = np.arange(n + 1) * tau
    np.testing.assert_allclose(x, 1000.0 * np.sinh(kappa * (1 - t)) / math.sinh(kappa), rtol=1e-12)
    # Euler–Lagrange: (x_{j-1} - 2 x_j + x_{j+1}) / tau^2 = kappa~^2 x_j on the interior points.
    second_difference = (x[:-2] - 2 * x[1:-1] + x[2:]) / tau**2
    np.testing.assert_allclose(second_difference, kappa_tilde_sq * x[1:-1], rtol=1e-9)
    trades = schedule_weights("almgren_chriss", n, risk_aversion=lam, sigma=sigma, eta=eta)
    assert trades.sum() == pytest.approx(1.0)
    assert np.all(np.diff(trades) < 0)  # risk aversion front-loads
    # Fine grids converge to the continuous kappa = sqrt(lambda sigma^2 / eta).
    assert ac_kappa(lam, sigma, eta, 10_000) == pytest.approx(math.sqrt(kappa_tilde_sq), rel=1e-6)


def test_almgren_chriss_without_risk_aversion_is_twap() -> None:
    np.testing.assert_allclose(schedule_weights("almgren_chriss", 5, risk_aversion=0.0), [0.2] * 5, atol=1e-12)
    np.testing.assert_allclose(schedule_weights("almgren_chriss", 5, risk_aversion=1e-9), [0.2] * 5, atol=1e-8)
    children = plan_children(parent(quantity=100, schedule="almgren_chriss", n_slices=4))
    assert sum(c.quantity for c in children) == 100.0
    assert children[0].quantity > children[-1].quantity


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=12).filter(lambda w: sum(w) > 0),
    total=st.integers(0, 10_000),
)
def test_lot_rounding_conserves_the_total_exactly_and_stays_within_one_lot(weights: list[float], total: int) -> None:
    w = np.array(weights) / sum(weights)
    lots = round_to_lots(w, total)
    assert sum(lots) == total
    assert all(v >= 0 for v in lots)
    assert np.all(np.abs(np.array(lots) - w * total) < 1.0 + 1e-9)


def test_slices_of_zero_lots_are_dropped_but_keep_their_index() -> None:
    children = plan_children(parent(quantity=2, n_slices=5))
    assert [c.slice_index for c in children] == [0, 1]
    assert [c.quantity for c in children] == [1.0, 1.0]


def test_slice_costs_come_from_the_cost_callable_on_slippage_features() -> None:
    seen: list[pl.DataFrame] = []

    def cost_model(features: pl.DataFrame) -> pl.DataFrame:
        seen.append(features)
        return pl.DataFrame({"expected_cost_bps": (features["size_over_adv"] * 1e4).to_list()})

    stats = MarketStats(adv=1000.0, sigma=0.02, spread_bps=8.0)
    children = plan_children(parent(quantity=30, n_slices=3, side="sell"), stats=stats, cost_model=cost_model)
    assert tuple(seen[0].columns) == FEATURES
    assert seen[0]["size_over_adv"].to_list() == [0.01, 0.01, 0.01]
    assert seen[0]["participation"].to_list() == pytest.approx([0.03] * 3)  # 10 of a third of 1000
    assert seen[0]["side"].to_list() == [-1.0] * 3
    assert [c.expected_cost_bps for c in children] == pytest.approx([100.0] * 3)
    # Without market statistics the parent's expected cost is carried to each slice.
    assert [c.expected_cost_bps for c in plan_children(parent(quantity=3))] == [4.0] * 3


def test_config_from_params_and_bad_inputs() -> None:
    assert ScheduleConfig.from_params({"n_slices": 8, "risk_aversion": 0.5}).n_slices == 8
    with pytest.raises(ExecutionError, match="execution.schedule: unknown keys"):
        ScheduleConfig.from_params({"slices": 3})
    with pytest.raises(OrderError, match="schedule must be one of"):
        orders_from_frame(order_frame("v", ["A"], schedule="pov"))
    with pytest.raises(OrderError, match="not a multiple of lot_size"):
        orders_from_frame(order_frame("v", ["A"], quantity=2.5, lot_size=1.0))
    with pytest.raises(OrderError, match="more than one order"):
        orders_from_frame(order_frame("v", ["A", "A"]))


# -- Almgren–Chriss at extreme risk aversion, and non-finite weights ------------------------------


def _ac_limit_trades(a: float, n: int) -> np.ndarray:
    """Trades of the Almgren–Chriss trajectory for ``a = kappa tau`` so large that ``exp(-2a) == 0`` in floats.

    ``x_j = e^{-kappa t_j} (1 - e^{-2 kappa (T - t_j)}) / (1 - e^{-2 kappa T})`` and ``T - t_j >= tau`` for
    ``j < N``, so ``x_j = e^{-j a}`` (``j < N``), ``x_N = 0``; slice ``j`` trades ``x_{j-1} - x_j``:
    ``e^{-(j-1) a} (1 - e^{-a})`` for ``j < N`` and ``e^{-(N-1) a}`` for the last one.
    """
    j = np.arange(1, n + 1, dtype=float)
    trades = np.exp(-(j - 1) * a) * (1.0 - math.exp(-a))
    trades[-1] = math.exp(-(n - 1) * a)
    return trades


def test_almgren_chriss_at_extreme_risk_aversion_is_finite_and_trades_almost_everything_first() -> None:
    lam, sigma, eta, n = 1e40, 0.02, 4e-4, 10  # kappa~^2 = lam sigma^2 / eta = 1e40
    tau = 1.0 / n
    a = math.acosh(1.0 + 0.5 * 1e40 * tau**2)  # kappa tau from the discrete condition: ~ ln(1e38) = 87.5
    assert a * n > 710  # sinh(kappa T) overflows a float
    trades = schedule_weights("almgren_chriss", n, risk_aversion=lam, sigma=sigma, eta=eta)
    assert np.isfinite(trades).all() and (trades >= 0).all()
    assert trades.sum() == pytest.approx(1.0, abs=1e-15)
    assert trades[0] == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(trades, _ac_limit_trades(a, n), rtol=1e-9, atol=0)
    x = ac_trajectory(1000.0, ac_kappa(lam, sigma, eta, n), n)
    assert np.isfinite(x).all() and x[0] == 1000.0 and x[-1] == 0.0
    # Through plan_children: the whole parent in the first slice, no garbage lot counts.
    config = ScheduleConfig(risk_aversion=lam)
    children = plan_children(parent(quantity=100, schedule="almgren_chriss", n_slices=n), config)
    assert [(c.slice_index, c.quantity) for c in children] == [(0, 100.0)]
    assert schedule_weights("almgren_chriss", 1, risk_aversion=lam, sigma=sigma, eta=eta).tolist() == [1.0]


@pytest.mark.parametrize("kappa", [1e-7, 1e-3, 0.3, 1.0, 4.5, 30.0, 300.0, 700.0])
@pytest.mark.parametrize("n", [1, 3, 10, 50])
def test_almgren_chriss_trajectory_equals_the_sinh_form_where_that_is_finite(kappa: float, n: int) -> None:
    t = np.linspace(0.0, 1.0, n + 1)
    sinh_form = np.sinh(kappa * (1.0 - t)) / np.sinh(kappa)  # Almgren & Chriss (2000), T = 1
    np.testing.assert_allclose(ac_trajectory(1.0, kappa, n), sinh_form, rtol=1e-12, atol=0)
    np.testing.assert_allclose(-np.diff(ac_trajectory(1.0, kappa, n)), -np.diff(sinh_form), rtol=1e-12, atol=0)


def test_non_finite_weights_and_inputs_are_refused() -> None:
    with pytest.raises(ExecutionError, match="finite"):
        round_to_lots(np.array([0.5, math.nan, 0.5]), 10)
    with pytest.raises(ExecutionError, match="finite"):
        round_to_lots(np.array([0.5, math.inf]), 10)
    with pytest.raises(ExecutionError, match="almgren_chriss"):
        schedule_weights("almgren_chriss", 5, sigma=math.nan)
    with pytest.raises(ExecutionError, match="almgren_chriss"):
        schedule_weights("almgren_chriss", 5, risk_aversion=math.inf)
    nan_vol = MarketStats(adv=1000.0, sigma=math.nan, spread_bps=8.0)  # a symbol without a volatility estimate
    with pytest.raises(ExecutionError, match="almgren_chriss"):
        plan_children(parent(quantity=100, schedule="almgren_chriss", n_slices=4), stats=nan_vol)
    with pytest.raises(ExecutionError, match="risk_aversion"):
        ScheduleConfig(risk_aversion=math.nan)
