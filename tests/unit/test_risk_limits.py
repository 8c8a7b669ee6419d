"""No limit is ever exceeded, whatever the raw book: property tests of ``constrain_book``, plus the
binding labels and the equity scaling of ``RiskLimits``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mem_pipeline.risk import RiskConfig, RiskLimits, RiskModel, constrain_book, increases_risk, portfolio_cvar
from mem_pipeline.risk.covariance import ledoit_wolf_covariance, portfolio_vol

REL = 1e-9


def _model(returns: np.ndarray, alpha: float = 0.975) -> RiskModel:
    cov, shrinkage = ledoit_wolf_covariance(returns)
    return RiskModel(returns, cov, shrinkage, alpha)


@st.composite
def books(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    t = draw(st.integers(20, 80))
    vol = rng.uniform(0.002, 0.08, n)
    returns = rng.standard_t(3, (t, n)) * vol * draw(st.sampled_from([0.0, 0.5, 0.95]))
    returns += rng.standard_t(3, (t, n)) * vol
    prices = np.exp(rng.uniform(np.log(0.5), np.log(2_000), n))
    lots = rng.choice([0.001, 0.1, 1.0, 10.0, 100.0], n)
    raw_scale = draw(st.sampled_from([1.0, 100.0, 1e4, 1e7]))
    raw = rng.normal(0, raw_scale, n) * (rng.random(n) < 0.8)
    current = np.round(rng.normal(0, draw(st.sampled_from([0.0, 500.0, 5e4]))) / prices / lots) * lots
    equity = draw(st.floats(100.0, 1e7))
    config = RiskConfig(
        max_symbol_exposure=draw(st.floats(1.0, 5_000.0)),
        max_gross_exposure=draw(st.floats(1.0, 20_000.0)),
        max_net_exposure=draw(st.sampled_from([0.0, 10.0, 500.0, 3_000.0, 1e6])),
        cvar_budget=draw(st.sampled_from([1e-5, 1e-3, 0.02, 0.5])),
    )
    limits = RiskLimits.for_equity(config, equity, kill_switch=draw(st.booleans()))
    return {"raw": raw, "current": current, "prices": prices, "lots": lots, "returns": returns, "limits": limits}


def test_no_limit_is_ever_exceeded() -> None:
    # Every example runs the sizing with and without the lot top-up; the counts at the end make sure the
    # strategy really reaches the top-up and each limit that can refuse a lot (else this proves nothing).
    seen = {"examples": 0, "topped_up": 0, "topped_up_killed": 0}

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(book=books())
    def check(book: dict) -> None:
        limits: RiskLimits = book["limits"]
        model = _model(book["returns"])
        labels = np.array(["kelly"] * book["raw"].size, dtype=object)
        args = (book["raw"], book["current"], book["prices"], book["lots"], model, limits, labels)
        out = constrain_book(*args)
        rounded = constrain_book(*args, top_up=False)
        units, notional = out.target_units, out.target_units * book["prices"]
        assert np.isfinite(units).all()
        lots_held = units / book["lots"]
        np.testing.assert_allclose(lots_held, np.round(lots_held), atol=1e-9)
        assert np.abs(notional).max() <= limits.symbol_cap * (1 + REL)
        assert np.abs(notional).sum() <= limits.gross_cap * (1 + REL)
        assert abs(notional.sum()) <= limits.net_cap * (1 + REL) + 1e-9
        # The budget against independently recomputed CVaRs: scenarios (own formula) and the LW normal.
        hist = portfolio_cvar(book["returns"], notional, 0.975)
        gauss = portfolio_vol(model.covariance, notional) * 2.3378027922014133  # phi(z_0.975) / 0.025
        assert max(hist, gauss) <= limits.cvar_budget * (1 + 1e-6) + 1e-9
        assert out.cvar == pytest.approx(max(hist, gauss), rel=1e-9, abs=1e-9)
        if limits.kill_switch:
            assert not increases_risk(units, book["current"]).any()
        # Before lots, sizes only shrink toward zero from the raw book (or to the current position under
        # the kill switch); the lots then never flip a side and never pass the un-rounded target by a lot.
        unrounded = out.unrounded_notional
        assert (np.abs(unrounded) <= np.abs(book["raw"]) * (1 + REL) + 1e-9).all() or limits.kill_switch
        assert (notional * book["raw"] >= 0).all() and (notional * unrounded >= 0).all()
        over = (np.abs(units) - np.abs(unrounded) / book["prices"]) / book["lots"]
        assert (over < 1 + 1e-9).all()
        # Without the top-up every size rounds toward zero; the top-up adds at most one lot per symbol,
        # on the target's side, and counts the lots it added.
        rounded_units = rounded.target_units
        assert (np.abs(rounded_units * book["prices"]) <= np.abs(unrounded) * (1 + REL) + 1e-9).all()
        added = (units - rounded_units) * np.sign(unrounded) / book["lots"]
        np.testing.assert_allclose(added, np.round(added), atol=1e-9)
        assert set(np.round(added).tolist()) <= {0.0, 1.0}
        assert out.top_up_lots == int(np.round(added).sum())
        seen["examples"] += 1
        seen["topped_up"] += out.top_up_lots > 0
        seen["topped_up_killed"] += out.top_up_lots > 0 and limits.kill_switch
        for limit in out.top_up_refused:
            seen[limit] = seen.get(limit, 0) + 1

    check()
    assert seen["topped_up"] >= 0.1 * seen["examples"], seen
    assert seen["topped_up_killed"] > 0, seen
    for limit in ("symbol_cap", "gross_cap", "net_cap", "cvar_budget"):
        assert seen.get(limit, 0) > 0, (limit, seen)


def test_binding_labels_name_the_limit_that_set_each_size() -> None:
    rng = np.random.default_rng(0)
    returns = rng.normal(0, 0.01, (100, 4))
    config = RiskConfig(max_symbol_exposure=750, max_gross_exposure=3000, max_net_exposure=3000, cvar_budget=0.5)
    limits = RiskLimits.for_equity(config, 10_000)
    prices, lots = np.full(4, 10.0), np.ones(4)
    raw = np.array([2_000.0, 500.0, 0.0, -300.0])
    out = constrain_book(raw, np.zeros(4), prices, lots, _model(returns), limits, np.array(["kelly"] * 4, dtype=object))
    np.testing.assert_array_equal(out.target_units, [75.0, 50.0, 0.0, -30.0])
    assert out.binding.tolist() == ["symbol_cap", "kelly", "kelly", "kelly"]

    tight = RiskLimits.for_equity(config.replace(max_gross_exposure=100.0), 10_000)
    out = constrain_book(raw, np.zeros(4), prices, lots, _model(returns), tight, np.array(["kelly"] * 4, dtype=object))
    assert np.abs(out.target_notional).sum() <= 100.0
    assert out.binding[[0, 1, 3]].tolist() == ["gross_cap"] * 3


def test_net_cap_scales_the_dominant_side_only() -> None:
    returns = np.random.default_rng(1).normal(0, 0.01, (100, 3))
    config = RiskConfig(max_net_exposure=100.0, cvar_budget=0.5)
    limits = RiskLimits.for_equity(config, 10_000)
    raw = np.array([400.0, 300.0, -500.0])
    out = constrain_book(
        raw, np.zeros(3), np.ones(3), np.ones(3), _model(returns), limits, np.array(["kelly"] * 3, dtype=object)
    )
    assert out.target_notional[2] == -500.0
    assert out.target_notional.sum() == pytest.approx(100.0, abs=1.0)
    assert out.target_notional.sum() <= 100.0
    assert out.binding.tolist() == ["net_cap", "net_cap", "kelly"]


def test_cvar_budget_scales_the_book_onto_the_budget() -> None:
    returns = np.random.default_rng(2).normal(0, 0.02, (250, 5))
    config = RiskConfig(cvar_budget=0.001)  # 10 on 10,000
    limits = RiskLimits.for_equity(config, 10_000)
    raw = np.array([500.0, 400.0, -300.0, 200.0, 100.0])
    lots = np.full(5, 1e-6)  # near-continuous, so the rounded book sits on the budget
    model = _model(returns)
    out = constrain_book(raw, np.zeros(5), np.ones(5), lots, model, limits, np.array(["kelly"] * 5, dtype=object))
    assert model.cvar(out.target_notional) == pytest.approx(10.0, rel=1e-4)
    assert model.cvar(out.target_notional) <= 10.0
    np.testing.assert_allclose(out.target_notional / raw, out.target_notional[0] / raw[0], rtol=1e-4)
    assert set(out.binding) == {"cvar_budget"}


def test_limits_scale_with_equity() -> None:
    config = RiskConfig()
    limits = RiskLimits.for_equity(config, 20_000)
    assert (limits.symbol_cap, limits.gross_cap, limits.net_cap) == (1_500.0, 6_000.0, 3_000.0)
    assert limits.cvar_budget == pytest.approx(400.0)


def test_rounding_that_breaks_a_hedge_is_caught_by_the_budget_recheck() -> None:
    # Two almost perfectly offsetting symbols and a long history (so Ledoit–Wolf barely shrinks): rounding
    # the second leg down to its 10-unit lot leaves an unhedged residual whose CVaR exceeds the budget.
    z = np.random.default_rng(0).normal(0, 0.02, 20_000)
    returns = np.column_stack([z, -z + np.random.default_rng(1).normal(0, 1e-4, z.size)])
    model = _model(returns)
    raw = np.array([1_000.0, 990.0])
    budget = 0.5 * model.cvar(raw)
    assert model.cvar(np.array([500.0, 490.0])) > budget  # what plain rounding of the scaled book would give
    config = RiskConfig(max_symbol_exposure=1e4, max_gross_exposure=1e5, max_net_exposure=1e5, cvar_budget=budget / 1e4)
    limits = RiskLimits.for_equity(config, 1e4)
    labels = np.array(["kelly", "kelly"], dtype=object)
    out = constrain_book(raw, np.zeros(2), np.ones(2), np.array([1.0, 10.0]), model, limits, labels)
    assert out.repairs > 0
    assert model.cvar(out.target_notional) <= budget


def _long_book(prices: list[float], raw: list[float], config: RiskConfig) -> object:
    n = len(prices)
    returns = np.random.default_rng(3).normal(0, 0.01, (100, n))
    limits = RiskLimits.for_equity(config, 10_000)
    labels = np.array(["kelly"] * n, dtype=object)
    return constrain_book(np.array(raw), np.zeros(n), np.array(prices), np.ones(n), _model(returns), limits, labels)


def test_top_up_hands_lots_to_the_largest_remainders_until_the_gross_cap() -> None:
    # Targets (no cap binds before lots; gross 94):  A 25 @ 10 = 2.5 lots, B 19 @ 10 = 1.9, C 14 @ 20 = 0.7,
    # D 6 @ 20 = 0.3, E 30 @ 40 = 0.75. Rounded toward zero: [2, 1, 0, 0, 0] lots, gross 30.
    # Remainders, largest first: B 0.9, E 0.75, C 0.7, A 0.5, D 0.3.
    prices, raw = [10.0, 10.0, 20.0, 20.0, 40.0], [25.0, 19.0, 14.0, 6.0, 30.0]
    roomy = RiskConfig(max_symbol_exposure=1e3, max_net_exposure=1e3, cvar_budget=0.5)

    # Gross cap 100: B +10 -> 40, E +40 -> 80, C +20 -> 100 (on the cap: allowed); A would make 110, D 120.
    out = _long_book(prices, raw, roomy.replace(max_gross_exposure=100.0))
    np.testing.assert_array_equal(out.target_units, [2.0, 2.0, 1.0, 0.0, 1.0])
    assert np.abs(out.target_notional).sum() == 100.0
    assert out.top_up_lots == 3 and out.top_up_refused == {"gross_cap": 2}
    assert out.binding.tolist() == ["kelly", "kelly", "kelly", "lot_size", "kelly"]

    # Gross cap 95: C's lot (20) would cross it after B and E (80 -> 100); A's smaller lot still fits (90).
    out = _long_book(prices, raw, roomy.replace(max_gross_exposure=95.0))
    np.testing.assert_array_equal(out.target_units, [3.0, 2.0, 0.0, 0.0, 1.0])
    assert out.top_up_lots == 3 and out.top_up_refused == {"gross_cap": 2}
    assert out.binding.tolist() == ["kelly", "kelly", "lot_size", "lot_size", "kelly"]

    # Off: plain rounding toward zero.
    out = constrain_book(
        np.array(raw),
        np.zeros(5),
        np.array(prices),
        np.ones(5),
        _model(np.random.default_rng(3).normal(0, 0.01, (100, 5))),
        RiskLimits.for_equity(roomy.replace(max_gross_exposure=95.0), 10_000),
        np.array(["kelly"] * 5, dtype=object),
        top_up=False,
    )
    np.testing.assert_array_equal(out.target_units, [2.0, 1.0, 0.0, 0.0, 0.0])
    assert out.top_up_lots == 0


def test_top_up_ties_go_to_the_larger_raw_target_then_symbol_order() -> None:
    # Symbol cap 25 then gross cap 60: every target is 15 = 1.5 lots at 10 (equal remainders of 0.5), all
    # round to 1 lot (gross 40); two more lots fit: to the raw 3,000s, the first by symbol order first.
    config = RiskConfig(max_symbol_exposure=25.0, max_gross_exposure=60.0, max_net_exposure=1e3, cvar_budget=0.5)
    out = _long_book([10.0] * 4, [1_000.0, 3_000.0, 2_000.0, 3_000.0], config)
    np.testing.assert_array_equal(out.target_units, [1.0, 2.0, 1.0, 2.0])
    out = _long_book([10.0] * 4, [1_000.0, 3_000.0, 2_000.0, 3_000.0], config.replace(max_gross_exposure=55.0))
    np.testing.assert_array_equal(out.target_units, [1.0, 2.0, 1.0, 1.0])


def test_top_up_under_the_kill_switch_never_passes_the_current_position() -> None:
    returns = np.random.default_rng(4).normal(0, 0.01, (100, 3))
    config = RiskConfig(max_symbol_exposure=1e3, max_gross_exposure=1e3, max_net_exposure=1e3, cvar_budget=0.5)
    limits = RiskLimits.for_equity(config, 10_000, kill_switch=True)
    # A: long 3 @ 10, raw 25 (2.5 lots, rounds to 2, the top-up restores 3 = the position, no more);
    # B: flat, raw 8 (no new risk); C: short 1, raw +8 (reduce-only: closed, never flipped long).
    current = np.array([3.0, 0.0, -1.0])
    out = constrain_book(
        np.array([25.0, 8.0, 8.0]),
        current,
        np.full(3, 10.0),
        np.ones(3),
        _model(returns),
        limits,
        np.array(["kelly"] * 3, dtype=object),
    )
    np.testing.assert_array_equal(out.target_units, [3.0, 0.0, 0.0])
    assert not increases_risk(out.target_units, current).any()


def test_lot_top_up_is_a_risk_parameter() -> None:
    import yaml

    from mem_pipeline.risk import RiskError

    with open(Path(__file__).resolve().parents[2] / "params.yaml") as handle:
        params = yaml.safe_load(handle)["risk"]
    assert params["lot_top_up"] is True and RiskConfig.from_params(params).lot_top_up is True
    assert RiskConfig.from_params({"lot_top_up": False}).lot_top_up is False
    assert RiskConfig().lot_top_up is True
    with pytest.raises(RiskError, match="risk.lot_top_up"):
        RiskConfig.from_params({"lot_top_up": "yes"})
