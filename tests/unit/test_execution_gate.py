"""Pre-trade gate (each rejection names the limit, the amount and the threshold) and circuit breaker."""

from __future__ import annotations

import datetime as dt

import pytest
from execution_support import order_frame

from mem_pipeline.core.orders import orders_from_frame
from mem_pipeline.execution.breaker import BreakerConfig, BreakerState, CircuitBreaker
from mem_pipeline.execution.errors import ExecutionError
from mem_pipeline.execution.gate import (
    ApprovedOrder,
    Exposure,
    GateConfig,
    GateRejected,
    KillSwitchEngaged,
    PreTradeGate,
    Rejection,
)
from mem_pipeline.risk.config import RiskConfig
from mem_pipeline.risk.limits import RiskLimits

GATE = GateConfig(max_order_notional=750, price_band=0.05, max_position_notional=750, max_gross_exposure=3000)


def parent(symbol: str = "AAA", quantity: float = 10, side: str = "buy", price: float = 10.0):
    return orders_from_frame(order_frame("v1", [symbol], quantity=quantity, side=side, price=price))[0]


def rejection(order, prices: dict, exposure: dict | None = None, config: GateConfig = GATE):
    with pytest.raises(GateRejected) as info:
        PreTradeGate(config).check(order, Exposure(exposure or {}, prices))
    return info.value


def test_max_order_notional_names_limit_amount_and_threshold() -> None:
    error = rejection(parent(quantity=100), {"AAA": 10.0})
    r = error.rejection
    assert (r.limit, r.amount, r.threshold, r.symbol) == ("max_order_notional", 1000.0, 750.0, "AAA")
    assert "max_order_notional 1,000 exceeds 750" in str(error)


def test_price_band_catches_a_fat_finger_reference_price() -> None:
    r = rejection(parent(price=10.0), {"AAA": 11.0}).rejection
    assert r.limit == "price_band" and r.amount == pytest.approx(1 / 11) and r.threshold == 0.05
    assert "reference 10.0 vs last 11.0" in r.message
    assert rejection(parent(), {}).rejection.limit == "last_price"


def test_position_limit_counts_existing_and_working_exposure() -> None:
    r = rejection(parent(quantity=10), {"AAA": 10.0}, {"AAA": 70.0}).rejection
    assert (r.limit, r.amount, r.threshold) == ("max_position_notional", 800.0, 750.0)
    # A sell that reduces the position passes.
    PreTradeGate(GATE).check(parent(quantity=10, side="sell"), Exposure({"AAA": 70.0}, {"AAA": 10.0}))


def test_gross_exposure_is_cumulative_within_a_batch() -> None:
    gate = PreTradeGate(GATE)
    exposure = Exposure({"B": 70.0, "C": -70.0, "D": 70.0}, {s: 10.0 for s in "ABCDE"})  # 2100 gross at 10
    approved = gate.check(parent("A", 50), exposure)  # 2600
    assert isinstance(approved, ApprovedOrder) and exposure.units["A"] == 50.0 and exposure.gross == 2600.0
    with pytest.raises(GateRejected) as info:
        gate.check(parent("E", 50), exposure)  # 3100
    r = info.value.rejection
    assert (r.limit, r.amount, r.threshold) == ("max_gross_exposure", 3100.0, 3000.0)
    assert "E" not in exposure.units  # a rejected order adds nothing
    held_unpriced = Exposure({"Z": 5.0}, {"A": 10.0})
    assert rejection(parent("A", 5), {"A": 10.0}, {"Z": 5.0}).rejection.limit == "last_price"
    assert held_unpriced.unpriced == {"Z"}


def test_kill_switch_stops_everything_and_is_visible() -> None:
    gate = PreTradeGate(GATE)
    gate.engage_kill_switch("drawdown")
    assert gate.kill_switch_engaged
    with pytest.raises(KillSwitchEngaged, match="kill_switch"):
        gate.check(parent(), Exposure({}, {"AAA": 10.0}))
    gate.release_kill_switch()
    gate.check(parent(), Exposure({}, {"AAA": 10.0}))
    assert PreTradeGate(GateConfig(kill_switch=True)).kill_switch_engaged


def test_the_drawdown_kill_switch_makes_the_gate_reduce_only() -> None:
    killed = RiskLimits.for_equity(RiskConfig(), 8_000.0, kill_switch=True)
    gate = PreTradeGate(GateConfig(), killed)
    assert gate.limits.reduce_only and not gate.kill_switch_engaged
    gate.check(parent(quantity=30, side="sell"), Exposure({"AAA": 50.0}, {"AAA": 10.0}))

    def refused(order, exposure: dict) -> Rejection:
        with pytest.raises(GateRejected) as info:
            PreTradeGate(GateConfig(), killed).check(order, Exposure(exposure, {"AAA": 10.0}))
        return info.value.rejection

    r = refused(parent(quantity=10), {"AAA": 50.0})
    assert (r.limit, r.amount, r.threshold) == ("reduce_only", 60.0, 50.0)
    flip = refused(parent(quantity=70, side="sell"), {"AAA": 50.0})
    assert (flip.limit, flip.amount, flip.threshold) == ("reduce_only", -20.0, 0.0)
    assert "flip" in flip.message
    assert refused(parent(quantity=1), {}).limit == "reduce_only"


def test_the_gate_enforces_the_days_limits_scaled_with_equity() -> None:
    # At 20,000 equity the risk caps double (750 -> 1,500 a symbol, 3,000 -> 6,000 gross): the gate follows.
    limits = RiskLimits.for_equity(RiskConfig(), 20_000.0)
    gate = PreTradeGate(GateConfig(), limits)
    assert (gate.limits.max_position_notional, gate.limits.max_gross_exposure) == (1_500.0, 6_000.0)
    assert gate.limits.max_order_notional == 3_000.0  # a full short to a full long
    gate.check(parent(quantity=140), Exposure({}, {"AAA": 10.0}))  # 1,400 a symbol: within 1,500
    with pytest.raises(GateRejected) as info:
        PreTradeGate(GateConfig(), limits).check(parent(quantity=160), Exposure({}, {"AAA": 10.0}))
    assert (info.value.rejection.limit, info.value.rejection.threshold) == ("max_position_notional", 1_500.0)
    # an operator's ceiling tightens a limit, never loosens it, and says so
    capped = PreTradeGate(GateConfig(max_position_notional=1_000.0, max_gross_exposure=1e9), limits).limits
    assert (capped.max_position_notional, capped.sources["max_position_notional"]) == (1_000.0, "operator")
    assert (capped.max_gross_exposure, capped.sources["max_gross_exposure"]) == (6_000.0, "risk")
    assert capped.to_dict()["kill_switch"] is False and capped.to_dict()["reduce_only"] is False


def test_approved_orders_cannot_be_built_outside_the_gate() -> None:
    with pytest.raises(ExecutionError, match="only be created by PreTradeGate"):
        ApprovedOrder(parent(), 10.0)
    with pytest.raises(ExecutionError, match="only be created by PreTradeGate"):
        ApprovedOrder(parent(), 10.0, object())


def test_gate_config_from_params() -> None:
    assert GateConfig.from_params({"max_order_notional": 500}).max_order_notional == 500.0
    with pytest.raises(ExecutionError, match="price_band must be a positive number"):
        GateConfig(price_band=0)
    with pytest.raises(ExecutionError, match="unknown keys"):
        GateConfig.from_params({"max_notional": 1})


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def test_breaker_opens_after_consecutive_failures_and_a_probe_closes_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(failures=3, cooldown_seconds=10), clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.snapshot()["state"] == "open" and breaker.snapshot()["consecutive_failures"] == 3
    clock.advance(9.9)
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # exactly one probe
    breaker.record_failure()  # the probe failed: open for another cooldown
    assert breaker.state is BreakerState.OPEN
    clock.advance(10)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    states = [s for _, s in breaker.history]
    assert states == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN, BreakerState.HALF_OPEN,
                      BreakerState.CLOSED]  # fmt: skip
