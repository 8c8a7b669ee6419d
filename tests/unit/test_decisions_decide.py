"""``decide`` end to end on seeded inputs: orders = targets - positions, costs and schedules, lots,
limits for random inputs, the kill switch, lookahead refusal, and versions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mem_pipeline.core.orders import ORDER_SCHEMA, Order
from mem_pipeline.decisions.checks import run_checks
from mem_pipeline.decisions.config import DecisionConfig
from mem_pipeline.decisions.sample_inputs import DECISION_DATE, decide_frames, make_inputs, sqrt_cost_model
from mem_pipeline.decisions.types import DecisionError
from mem_pipeline.risk import RiskConfig, RiskError, increases_risk

ROOMY = RiskConfig(max_symbol_exposure=3_000, max_gross_exposure=30_000, max_net_exposure=30_000, cvar_budget=0.5)


def _decide(**overrides: object):
    return _decided(**overrides)[0]


def _decided(**overrides: object):
    """``(decision, assessment)`` made like ``_decide``'s decision."""
    inputs = make_inputs(**{k: v for k, v in overrides.items() if k in ("n_symbols", "seed", "held_share", "drawdown")})
    inputs.update({k: v for k, v in overrides.items() if k not in ("n_symbols", "seed", "held_share", "drawdown")})
    inputs.setdefault("cost_model", sqrt_cost_model)
    return decide_frames(DECISION_DATE, **inputs)


def test_orders_are_targets_minus_positions_with_costs_and_schedules() -> None:
    decision, assessment = _decided(n_symbols=30, seed=3, risk_config=ROOMY)
    orders, targets = decision.orders, decision.targets
    assert dict(orders.schema) == ORDER_SCHEMA
    assert orders.height > 0 and (orders["decision_version"] == decision.version).all()
    signed = np.where(orders["side"].to_numpy() == "buy", 1.0, -1.0) * orders["quantity"].to_numpy()
    np.testing.assert_allclose(orders["current_position"].to_numpy() + signed, orders["target_position"].to_numpy())
    np.testing.assert_allclose(orders["notional"], orders["quantity"] * orders["reference_price"])
    # every symbol whose target differs from its position has exactly one order, and no other symbol has one
    moved = targets.filter(pl.col("target_position") != pl.col("current_position"))["symbol"].to_list()
    assert orders["symbol"].to_list() == moved
    # the cost is the cost model's, computed here from the order itself
    features = make_inputs(n_symbols=30, seed=3)["features"]
    row = orders.row(0, named=True)
    f = features.filter(pl.col("symbol") == row["symbol"]).row(0, named=True)
    vol = targets.filter(pl.col("symbol") == row["symbol"])["vol_forecast"].item()
    adv = f["dollar_volume_20d"] / f["close"]
    expected = 0.5 * f["spread_est"] * 1e4 + 0.7 * vol * 1e4 * np.sqrt(row["quantity"] / adv)
    assert row["expected_cost_bps"] == pytest.approx(expected)
    # the schedule follows the documented rule on size / ADV
    cfg = DecisionConfig()
    for r in orders.iter_rows(named=True):
        f = features.filter(pl.col("symbol") == r["symbol"]).row(0, named=True)
        x = r["quantity"] / (f["dollar_volume_20d"] / f["close"])
        want = (
            "twap"
            if x <= cfg.twap_max_participation
            else "vwap"
            if x <= cfg.vwap_max_participation
            else "almgren_chriss"
        )
        assert r["schedule"] == want
        assert r["n_slices"] == min(max(int(np.ceil(x / cfg.max_child_participation - 1e-12)), 1), cfg.max_slices)
    assert all(isinstance(o, Order) for o in decision.order_list())
    assert all(check.passed for check in run_checks(decision, assessment).values())


def test_lot_sizes_are_respected() -> None:
    inputs = make_inputs(n_symbols=12, seed=4, held_share=0.0)
    lots = {s: 7.0 for s in inputs["features"]["symbol"].to_list()}
    decision = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, lot_sizes=lots, risk_config=ROOMY, **inputs)[0]
    q = decision.targets["target_position"].to_numpy()
    np.testing.assert_allclose(q / 7.0, np.round(q / 7.0), atol=1e-9)
    assert (decision.orders["lot_size"] == 7.0).all()


def test_a_position_off_its_lot_size_is_refused() -> None:
    inputs = make_inputs(n_symbols=5, seed=5)
    inputs["positions"] = pl.DataFrame({"symbol": ["S0001"], "quantity": [2.5]})
    with pytest.raises(DecisionError, match="not multiples of their lot size"):
        decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **inputs)[0]


@pytest.mark.parametrize("name", ["returns", "vol_forecasts", "features", "regime_probabilities", "equity_curve"])
def test_inputs_dated_after_the_decision_are_refused(name: str) -> None:
    inputs = make_inputs(n_symbols=5, seed=6)
    later = make_inputs(n_symbols=5, seed=6, decision_date=DECISION_DATE + dt.timedelta(days=3))[name]
    inputs[name] = later
    with pytest.raises((RiskError, DecisionError), match="after the decision date"):
        decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **inputs)[0]


def test_signals_dated_after_the_decision_are_refused() -> None:
    inputs = make_inputs(n_symbols=5, seed=6)
    inputs["signals"] = inputs["signals"].with_columns(pl.lit(DECISION_DATE + dt.timedelta(days=1)).alias("trade_date"))
    with pytest.raises(RiskError, match="after the decision date"):
        decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **inputs)[0]


def test_no_signals_and_no_positions_give_an_empty_decision() -> None:
    inputs = make_inputs(n_symbols=5, seed=14)
    inputs["signals"], inputs["positions"] = inputs["signals"].head(0), inputs["positions"].head(0)
    decision, assessment = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **inputs)
    assert decision.orders.height == 0 and decision.targets.height == 0
    assert all(check.passed for check in run_checks(decision, assessment).values())


def test_symbols_without_enough_history_get_no_new_risk() -> None:
    inputs = make_inputs(n_symbols=6, seed=15, held_share=0.0)
    inputs["returns"] = inputs["returns"].filter(
        (pl.col("symbol") != "S0001") | (pl.col("trade_date") > DECISION_DATE - dt.timedelta(days=30))
    )
    decision = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, risk_config=ROOMY, **inputs)[0]
    row = decision.targets.filter(pl.col("symbol") == "S0001").row(0, named=True)
    assert (row["target_position"], row["binding_limit"]) == (0.0, "no_history")
    assert decision.targets.filter(pl.col("target_position") != 0).height > 0


def test_the_kill_switch_stops_new_risk() -> None:
    decision = _decide(n_symbols=40, seed=7, held_share=0.6, drawdown=0.15, risk_config=ROOMY)
    assert decision.report["kill_switch"] and decision.limits.kill_switch
    t = decision.targets
    assert not increases_risk(t["target_position"].to_numpy(), t["current_position"].to_numpy()).any()
    assert decision.orders.height > 0  # it may still reduce
    # ... while the same inputs without the drawdown do add risk
    free = _decide(n_symbols=40, seed=7, held_share=0.6, risk_config=ROOMY)
    assert increases_risk(free.targets["target_position"].to_numpy(), free.targets["current_position"].to_numpy()).any()


def test_held_symbols_without_a_signal_are_closed() -> None:
    inputs = make_inputs(n_symbols=6, seed=8, held_share=0.0)
    inputs["positions"] = pl.DataFrame({"symbol": ["S0002"], "quantity": [3.0]})
    inputs["signals"] = inputs["signals"].filter(pl.col("symbol") != "S0002")
    decision = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **inputs)[0]
    row = decision.orders.filter(pl.col("symbol") == "S0002").row(0, named=True)
    assert (row["side"], row["quantity"], row["target_position"], row["binding_limit"]) == (
        "sell",
        3.0,
        0.0,
        "no_signal",
    )


def test_the_volatile_regime_shrinks_the_book_continuously() -> None:
    sizes = []
    for p in (0.0, 0.5, 1.0):
        d = _decide(n_symbols=10, seed=9, held_share=0.0, regime_probabilities=[1 - p, p], risk_config=ROOMY)
        sizes.append(np.abs(d.targets["raw_notional"].to_numpy()))
    np.testing.assert_allclose(sizes[1], 0.75 * sizes[0])
    np.testing.assert_allclose(sizes[2], 0.5 * sizes[0])


def test_decisions_never_exceed_a_limit() -> None:
    # The two explicit examples run on every test run and hand out top-up lots (the second under the kill
    # switch); the count at the end makes sure the random ones reach the top-up too.
    seen = {"examples": 0, "topped_up": 0}

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        seed=st.integers(0, 10_000),
        n=st.integers(1, 25),
        symbol_cap=st.floats(5.0, 2_000.0),
        gross=st.floats(5.0, 10_000.0),
        net=st.floats(0.0, 5_000.0),
        budget=st.sampled_from([1e-4, 0.002, 0.02]),
        drawdown=st.sampled_from([0.0, 0.2]),
        lot=st.sampled_from([0.01, 1.0, 5.0]),
    )
    @example(seed=1, n=20, symbol_cap=500.0, gross=3_000.0, net=1_000.0, budget=0.02, drawdown=0.0, lot=1.0)
    @example(seed=0, n=20, symbol_cap=500.0, gross=500.0, net=5_000.0, budget=0.02, drawdown=0.2, lot=1.0)
    def check(
        seed: int, n: int, symbol_cap: float, gross: float, net: float, budget: float, drawdown: float, lot: float
    ) -> None:
        config = RiskConfig(
            max_symbol_exposure=symbol_cap,
            max_gross_exposure=gross,
            max_net_exposure=net,
            cvar_budget=budget,
            kelly_fraction=1.0,
            lot_size=lot,
        )
        inputs = make_inputs(n_symbols=n, seed=seed, drawdown=drawdown, held_share=0.0)
        held = make_inputs(n_symbols=n, seed=seed + 1)["positions"]
        inputs["positions"] = held.with_columns((pl.col("quantity") / lot).round() * lot)
        decision, assessment = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, risk_config=config, **inputs)
        checks = run_checks(decision, assessment)
        assert all(c.passed for c in checks.values()), checks
        notional = decision.targets["target_notional"].to_numpy()
        limits = decision.limits
        assert np.abs(notional).max() <= limits.symbol_cap * (1 + 1e-9)
        assert np.abs(notional).sum() <= limits.gross_cap * (1 + 1e-9)
        assert abs(notional.sum()) <= limits.net_cap * (1 + 1e-9) + 1e-9
        if limits.kill_switch:
            t = decision.targets
            assert not increases_risk(t["target_position"].to_numpy(), t["current_position"].to_numpy()).any()
        q = decision.orders["quantity"].to_numpy()
        assert np.isfinite(q).all() and (q > 0).all()
        np.testing.assert_allclose(q / lot, np.round(q / lot), atol=1e-9)
        seen["examples"] += 1
        seen["topped_up"] += decision.report["lot_top_ups"] > 0

    check()
    assert seen["topped_up"] >= 2, seen


def _cheap_and_expensive(n: int = 300, seed: int = 21) -> dict:
    """``n`` symbols, half at $10-20 and half at $300-500, all with the same p_up (a base rate) and no
    positions: with the default caps every target is a few currency units, under one share."""
    inputs = make_inputs(n_symbols=n, seed=seed, held_share=0.0)
    rng = np.random.default_rng(seed)
    cheap = rng.uniform(10.0, 20.0, n // 2)
    close = np.concatenate([cheap, rng.uniform(300.0, 500.0, n - n // 2)])
    inputs["features"] = inputs["features"].with_columns(pl.Series("close", close))
    inputs["signals"] = inputs["signals"].with_columns(pl.lit(0.53).alias("p_up"), pl.lit(1.0).alias("payoff_ratio"))
    inputs["regime_probabilities"] = [1.0, 0.0]
    inputs["equity_curve"] = None
    return inputs


def test_many_small_targets_no_longer_give_an_empty_book() -> None:
    inputs = _cheap_and_expensive()
    # Without the top-up: 300 x 0.25 x Kelly(0.53) x 10,000 = 45,000 long, cut to the 1,500 net cap, is 5.0
    # per symbol — below one share of every one of them, so rounding toward zero leaves nothing.
    off = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, risk_config=RiskConfig(lot_top_up=False), **inputs)[
        0
    ]
    assert off.orders.height == 0 and off.report["gross_exposure"] == 0.0
    assert set(off.targets["binding_limit"]) == {"lot_size"}
    np.testing.assert_allclose(off.targets["raw_notional"], 150.0)

    decision, assessment = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **inputs)
    assert all(check.passed for check in run_checks(decision, assessment).values())
    orders, limits = decision.orders, decision.limits
    # Equal targets: the remainder of a symbol is 5 / price lots, so the cheapest stocks come first, one
    # share each, until the next share would cross the net cap (the CVaR, ~2% of the book, is far below
    # the budget of 200): exactly the cheapest k with a running sum of prices <= 1,500.
    prices = inputs["features"]["close"].to_numpy()
    order = np.argsort(prices, kind="stable")
    k = int(np.searchsorted(np.cumsum(prices[order]), limits.net_cap, side="right"))
    symbols = inputs["features"]["symbol"].to_numpy()
    assert sorted(orders["symbol"].to_list()) == sorted(symbols[order[:k]].tolist())
    assert 75 <= k <= 150 and (orders["quantity"] == 1.0).all() and (orders["side"] == "buy").all()
    assert orders["reference_price"].max() <= 20.0  # no $300+ share for a 5.0 target while cheaper ones wait
    net = float(orders["notional"].sum())
    assert limits.net_cap - prices[order[k]] < net <= limits.net_cap
    assert decision.report["lot_top_ups"] == k and decision.report["portfolio_cvar"] < limits.cvar_budget
    assert decision.report["lot_top_up_refused"] == {"net_cap": 300 - k}
    assert set(orders["binding_limit"]) == {"net_cap"}  # the limit that set the un-rounded target


def test_the_top_up_is_deterministic() -> None:
    inputs = _cheap_and_expensive(n=120, seed=22)
    a = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **inputs)[0]
    b = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **inputs)[0]
    assert a.report["lot_top_ups"] > 0
    assert a.version == b.version and a.orders.equals(b.orders) and a.targets.equals(b.targets)
    # Rows in another order are the same inputs: same version, same lots to the same symbols.
    shuffled = {**inputs, "signals": inputs["signals"].reverse(), "features": inputs["features"].reverse()}
    c = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **shuffled)[0]
    assert c.version == a.version and c.orders.equals(a.orders)
    # Switching it off is a different parameter set, so a different version.
    off = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, risk_config=RiskConfig(lot_top_up=False), **inputs)[
        0
    ]
    assert off.version != a.version


def test_the_same_inputs_give_the_same_version_and_orders() -> None:
    a = _decide(n_symbols=15, seed=10)
    b = _decide(n_symbols=15, seed=10)
    assert a.report["lot_top_ups"] > 0  # the top-up is part of what must be reproducible
    assert a.version == b.version and len(a.version) == 16
    assert a.orders.equals(b.orders) and a.targets.equals(b.targets) and a.report == b.report
    # row order of an input is not content
    inputs = make_inputs(n_symbols=15, seed=10)
    inputs["returns"] = inputs["returns"].reverse()
    assert decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **inputs)[0].version == a.version


@pytest.mark.parametrize(
    "change",
    ["data_version", "model_hash", "param", "position", "equity", "signal", "return", "lot", "date"],
)
def test_any_change_of_input_changes_the_version(change: str) -> None:
    base = _decide(n_symbols=8, seed=11)
    inputs = make_inputs(n_symbols=8, seed=11)
    kwargs: dict[str, object] = {}
    date = DECISION_DATE
    if change == "data_version":
        inputs["data_versions"] = {**inputs["data_versions"], "int_bars__returns": "zzz"}
    elif change == "model_hash":
        inputs["model_hashes"] = {**inputs["model_hashes"], "slippage": "c2"}
    elif change == "param":
        kwargs["risk_config"] = RiskConfig(kelly_fraction=0.2)
    elif change == "position":
        inputs["positions"] = inputs["positions"].with_columns(pl.col("quantity") + 1)
    elif change == "equity":
        inputs["equity_curve"] = inputs["equity_curve"].with_columns(pl.col("equity") * 1.0001)
    elif change == "signal":
        inputs["signals"] = inputs["signals"].with_columns(pl.col("p_up") * 0.999)
    elif change == "return":
        inputs["returns"] = inputs["returns"].with_columns(
            pl.when(pl.int_range(pl.len()) == 0).then(pl.col("ret_1d") + 1e-9).otherwise(pl.col("ret_1d"))
        )
    elif change == "lot":
        kwargs["lot_sizes"] = {"S0000": 1.0}  # same value as the default, but a different parameter set
    elif change == "date":
        date = DECISION_DATE + dt.timedelta(days=3)
    assert decide_frames(date, cost_model=sqrt_cost_model, **inputs, **kwargs)[0].version != base.version


def test_missing_features_for_a_traded_symbol_are_refused() -> None:
    inputs = make_inputs(n_symbols=5, seed=12)
    inputs["features"] = inputs["features"].with_columns(
        pl.when(pl.col("symbol") == "S0003").then(None).otherwise(pl.col("close")).alias("close")
    )
    with pytest.raises(DecisionError, match="S0003"):
        decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **inputs)[0]


def test_a_cost_model_that_returns_the_wrong_shape_is_refused() -> None:
    with pytest.raises(DecisionError, match="cost model"):
        _decide(n_symbols=5, seed=13, cost_model=lambda orders: np.zeros(orders.height + 1))


def test_a_fitted_slippage_model_is_a_cost_model() -> None:
    from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, generate_market, simulate_fills
    from mem_pipeline.models.slippage import SlippageConfig, fit_slippage

    market = generate_market(SyntheticConfig(seed=3, n_symbols=8, start=dt.date(2015, 1, 1), end=dt.date(2015, 12, 31)))
    fitted = fit_slippage(simulate_fills(market, 4_000, seed=5), SlippageConfig(n_estimators=20, min_child_samples=50))
    decision = _decide(n_symbols=12, seed=16, risk_config=ROOMY, cost_model=fitted.predict)
    assert decision.orders.height > 0
    costs = decision.orders["expected_cost_bps"].to_numpy()
    assert np.isfinite(costs).all()
    # the costs are the model's own prediction for each order's features
    targets = decision.targets
    first = decision.orders.row(0, named=True)
    f = make_inputs(n_symbols=12, seed=16)["features"].filter(pl.col("symbol") == first["symbol"]).row(0, named=True)
    x = first["quantity"] / (f["dollar_volume_20d"] / f["close"])
    one = pl.DataFrame(
        {
            "size_over_adv": [x],
            "spread_bps": [f["spread_est"] * 1e4],
            "sigma": [targets.filter(pl.col("symbol") == first["symbol"])["vol_forecast"].item()],
            "participation": [x],
            "side": [first["side"]],
        }
    )
    assert costs[0] == pytest.approx(fitted.predict(one)["expected_cost_bps"].item())
