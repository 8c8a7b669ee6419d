"""Frozen domain objects of execution beside the parent ``Order`` (``mem_pipeline.core.orders``): child orders,
fills, broker reports."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mem_pipeline.core.orders import Side
from mem_pipeline.execution.states import OrderState


@dataclass(frozen=True)
class ChildOrder:
    """One slice of a parent, as sent to a broker (a market order for ``quantity`` units)."""

    client_id: str
    parent_id: str | None
    slice_index: int
    symbol: str
    side: Side
    quantity: float
    reference_price: float
    decision_date: dt.date
    expected_cost_bps: float | None = None


@dataclass(frozen=True)
class Fill:
    """One execution. ``cost_bps`` is paid cost vs the reference price (positive = worse). The market features
    (known to the paper broker, null for a real exchange) make the fill a row of the slippage training set."""

    fill_id: str
    client_id: str
    quantity: float
    price: float
    date: dt.date | None = None
    cost_bps: float | None = None
    size_over_adv: float | None = None
    spread_bps: float | None = None
    sigma: float | None = None
    participation: float | None = None


@dataclass(frozen=True)
class OrderReport:
    """What the broker says about one order now. ``fills`` may be empty when a broker reports only the
    cumulative ``filled_quantity`` and ``average_price`` (ccxt); the ledger then books the difference."""

    client_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: float
    state: OrderState
    filled_quantity: float = 0.0
    average_price: float | None = None
    fills: tuple[Fill, ...] = ()
    reason: str = ""
