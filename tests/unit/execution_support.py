"""Shared builders for the execution tests: order frames in ORDER_SCHEMA and small bar frames."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence

import numpy as np
import polars as pl

from mem_pipeline.core.orders import ORDER_SCHEMA
from mem_pipeline.execution.brokers.faults import FaultRates
from mem_pipeline.execution.brokers.paper import PaperBroker
from mem_pipeline.execution.ids import client_order_id
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.execution.states import OrderState

DECISION_DATE = dt.date(2024, 1, 2)


def order_frame(
    version: str,
    symbols: Sequence[str],
    *,
    quantity: float | Sequence[float] = 10.0,
    side: str | Sequence[str] = "buy",
    price: float = 10.0,
    lot_size: float = 1.0,
    schedule: str | Sequence[str] = "twap",
    n_slices: int | Sequence[int] = 3,
    decision_date: dt.date = DECISION_DATE,
) -> pl.DataFrame:
    n = len(symbols)

    def each(value: object) -> list:
        return list(value) if isinstance(value, (list, tuple)) else [value] * n

    qty, sides, schedules, slices = each(quantity), each(side), each(schedule), each(n_slices)
    rows = [
        {
            "decision_version": version,
            "decision_date": decision_date,
            "symbol": symbols[i],
            "side": sides[i],
            "quantity": float(qty[i]),
            "lot_size": lot_size,
            "reference_price": price,
            "notional": float(qty[i]) * price,
            "current_position": 0.0,
            "target_position": float(qty[i]) * (1 if sides[i] == "buy" else -1),
            "expected_cost_bps": 4.0,
            "schedule": schedules[i],
            "n_slices": int(slices[i]),
            "binding_limit": "kelly",
        }
        for i in range(n)
    ]
    return pl.DataFrame(rows, schema=ORDER_SCHEMA)


def bars(
    symbols: Sequence[str],
    start: dt.date = dt.date(2023, 12, 1),
    n_days: int = 40,
    *,
    volume: float = 1000.0,
    price: float = 10.0,
    seed: int = 0,
) -> pl.DataFrame:
    """Daily bars with a random walk close, constant volume and a 10 bps quoted spread."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in symbols:
        close = price * np.exp(np.cumsum(rng.normal(0, 0.01, n_days)))
        for d in range(n_days):
            c = float(close[d])
            o = float(close[d - 1]) if d else price
            rows.append(
                {
                    "date": start + dt.timedelta(days=d),
                    "symbol": s,
                    "open": o,
                    "high": max(o, c) * 1.002,
                    "low": min(o, c) * 0.998,
                    "close": c,
                    "volume": volume,
                    "bid": c * (1 - 5e-4),
                    "ask": c * (1 + 5e-4),
                }
            )
    return pl.DataFrame(rows)


# -- randomized fault scenarios (the engine's single-process suite and the multi-process one) ---------------


def random_decisions(rng: random.Random, prefix: str, max_symbols: int, max_slices: int) -> list[pl.DataFrame]:
    """One or two decision frames on 1..``max_symbols`` symbols with random sizes, sides and schedules."""
    symbols = [f"S{i}" for i in range(rng.randint(1, max_symbols))]
    return [
        order_frame(
            f"{prefix}-{k}",
            symbols,
            quantity=[rng.randint(1, 12) for _ in symbols],
            side=[rng.choice(["buy", "sell"]) for _ in symbols],
            schedule=[rng.choice(["twap", "vwap", "almgren_chriss"]) for _ in symbols],
            n_slices=[rng.randint(1, max_slices) for _ in symbols],
        )
        for k in range(rng.randint(1, 2))
    ]


def random_fault_rates(rng: random.Random, top: float) -> FaultRates:
    """Fault rates summing to a random 0.1..``top``, with a random lookup timeout rate."""
    weights = [rng.random() for _ in range(5)]
    scale = rng.uniform(0.1, top) / sum(weights)
    return FaultRates(*(w * scale for w in weights), lookup_timeout=rng.uniform(0, 0.3))


def assert_exactly_once(seed: int, frames: Sequence[pl.DataFrame], ledger: Ledger, paper: PaperBroker) -> int:
    """After a clean final run and a reconciliation: no duplicate at the exchange, every planned slice in the
    ledger with quantities conserved, nothing lost (each ledger order at the broker or refused by it), ledger =
    broker (states, fills) and positions = the signed sum of the broker's fills. Returns the orders at the broker."""
    at_broker = {r.client_id: r for r in paper.orders()}
    children = {c.client_id: c for c in ledger.children()}
    assert paper.duplicate_attempts == 0, seed
    for frame in frames:
        for row in frame.iter_rows(named=True):
            ids = {client_order_id(row["decision_version"], row["symbol"], j) for j in range(row["n_slices"])}
            assert sum(c.quantity for cid, c in children.items() if cid in ids) == row["quantity"], seed
    for cid, c in children.items():
        if cid not in at_broker:
            assert c.state is OrderState.REJECTED, (seed, cid, c.state)
    assert set(at_broker) <= set(children), seed
    for cid, r in at_broker.items():
        assert (children[cid].state, children[cid].filled_quantity) == (r.state, r.filled_quantity), (seed, cid)
    signed: dict[str, float] = {}
    for r in at_broker.values():
        signed[r.symbol] = signed.get(r.symbol, 0.0) + r.side.sign * r.filled_quantity
    positions = dict(ledger.positions().iter_rows())
    for symbol, quantity in signed.items():
        assert abs(positions.get(symbol, 0.0) - quantity) < 1e-9, (seed, symbol)
    return len(at_broker)
