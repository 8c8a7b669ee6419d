"""Paper broker: persistence across restarts, refusal of duplicate client ids, fills against later bars."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from execution_support import bars

from mem_pipeline.core.orders import Side
from mem_pipeline.execution.brokers.base import Broker
from mem_pipeline.execution.brokers.paper import PaperBroker, PaperConfig
from mem_pipeline.execution.errors import BrokerRejected, DuplicateClientOrderId
from mem_pipeline.execution.orders import ChildOrder
from mem_pipeline.execution.states import OrderState

D0 = dt.date(2024, 1, 2)


def child(cid: str = "mem" + "a" * 24, qty: float = 250.0, side: Side = Side.BUY, symbol: str = "AAA") -> ChildOrder:
    return ChildOrder(cid, "p", 0, symbol, side, qty, 10.0, D0)


def test_paper_broker_is_a_broker_and_keeps_its_orders_across_a_restart(tmp_path) -> None:
    first = PaperBroker(tmp_path)
    assert isinstance(first, Broker)
    report = first.submit(child())
    assert report.state is OrderState.ACKNOWLEDGED and report.broker_order_id == "paper-1"
    first.close()
    again = PaperBroker(tmp_path)  # the "process" restarted
    found = again.lookup(child().client_id, "AAA")
    assert found is not None and found.state is OrderState.ACKNOWLEDGED and found.quantity == 250.0
    assert again.lookup("mem" + "b" * 24, "AAA") is None
    with pytest.raises(DuplicateClientOrderId):
        again.submit(child())
    assert PaperBroker(tmp_path).duplicate_attempts == 1  # persisted too
    with pytest.raises(BrokerRejected):
        again.submit(child("mem" + "c" * 24, qty=0.0))


def test_fills_follow_later_bars_with_a_participation_cap_and_the_impact_model(tmp_path) -> None:
    config = PaperConfig(participation_cap=0.1, noise_scale=0.0, eta=0.5, delta=0.6, adv_window=20)
    broker = PaperBroker(tmp_path, config)
    broker.submit(child(qty=250.0))
    history = bars(["AAA"], start=D0 - dt.timedelta(days=30), n_days=34, volume=1000.0)
    made = broker.on_bars(history)
    report = broker.lookup(child().client_id, "AAA")
    # Bars after Jan 2 (Jan 3, 4, 5): at most 100 a bar -> 100, 100, 50.
    assert made == 3
    assert [f.quantity for f in report.fills] == [100.0, 100.0, 50.0]
    assert [f.date for f in report.fills] == [D0 + dt.timedelta(days=k) for k in (1, 2, 3)]
    assert report.state is OrderState.FILLED and report.filled_quantity == 250.0

    # Independent cost of the first fill: sigma and ADV from the 20 bars before Jan 3.
    frame = history.filter(pl.col("date") < D0 + dt.timedelta(days=1)).sort("date")
    closes = frame["close"].to_numpy()
    sigma = float(np.std(np.diff(np.log(closes))[-20:], ddof=1))
    adv = 1000.0
    bar = history.filter(pl.col("date") == D0 + dt.timedelta(days=1)).row(0, named=True)
    spread = (bar["ask"] - bar["bid"]) / ((bar["ask"] + bar["bid"]) / 2) * 1e4
    expected = spread / 2 + 0.5 * sigma * (100 / adv) ** 0.6 * 1e4
    first = report.fills[0]
    assert first.cost_bps == pytest.approx(expected, rel=1e-9)
    assert first.price == pytest.approx(bar["open"] * (1 + expected / 1e4))
    assert (first.size_over_adv, first.participation, first.sigma) == pytest.approx((0.1, 0.1, sigma))

    assert broker.on_bars(history) == 0  # each bar fills an order at most once


def test_partial_fills_then_expiry_and_the_same_fills_after_a_restart(tmp_path) -> None:
    config = PaperConfig(participation_cap=0.05, max_bars=2, seed=3)
    history = bars(["AAA"], start=D0 - dt.timedelta(days=25), n_days=30)
    a = PaperBroker(tmp_path / "a", config)
    a.submit(child(qty=500.0, side=Side.SELL))
    a.on_bars(history.filter(pl.col("date") <= D0 + dt.timedelta(days=1)))
    mid = a.lookup(child().client_id, "AAA")
    assert mid.state is OrderState.PARTIALLY_FILLED and mid.filled_quantity == 50.0
    a.close()
    a = PaperBroker(tmp_path / "a", config)
    a.on_bars(history)
    done = a.lookup(child().client_id, "AAA")
    assert done.state is OrderState.EXPIRED and done.filled_quantity == 100.0  # two bars of 50, then expired
    opens = dict(history.select("date", "open").iter_rows())
    for f in done.fills:  # a sell receives the open less its cost
        assert f.price == pytest.approx(opens[f.date] * (1 - f.cost_bps / 1e4))

    b = PaperBroker(tmp_path / "b", config)  # same orders and bars in one go: identical fills
    b.submit(child(qty=500.0, side=Side.SELL))
    b.on_bars(history)
    assert b.lookup(child().client_id, "AAA").fills == done.fills
    c = PaperBroker(tmp_path / "c", PaperConfig(participation_cap=0.05, max_bars=2, seed=4))
    c.submit(child(qty=500.0, side=Side.SELL))
    c.on_bars(history)
    assert [f.cost_bps for f in c.lookup(child().client_id, "AAA").fills] != [f.cost_bps for f in done.fills]


def test_no_fill_on_or_before_the_decision_date_and_cancel(tmp_path) -> None:
    broker = PaperBroker(tmp_path)
    broker.submit(child())
    assert broker.on_bars(bars(["AAA"], start=D0 - dt.timedelta(days=10), n_days=11)) == 0  # up to Jan 2
    cancelled = broker.cancel(child().client_id, "AAA")
    assert cancelled.state is OrderState.CANCELLED
    with pytest.raises(BrokerRejected, match="cannot be cancelled"):
        broker.cancel(child().client_id, "AAA")
    assert broker.orders(["BBB"]) == [] and len(broker.orders()) == 1
    assert not math.isnan(broker.orders()[0].quantity)
