"""Shared builders for the execution tests: order frames in ORDER_SCHEMA and small bar frames."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

from mem_pipeline.core.orders import ORDER_SCHEMA

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
