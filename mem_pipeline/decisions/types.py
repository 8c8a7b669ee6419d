"""Frozen decision objects: ``Order`` (one row of ``ORDER_SCHEMA``) and ``TradeDecision``."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import polars as pl

from mem_pipeline.core.errors import MemError
from mem_pipeline.core.schemas import ORDER_SCHEMA
from mem_pipeline.risk.limits import RiskLimits


class DecisionError(MemError, ValueError):
    """Bad decision input or configuration, or a conflicting write to the decision store."""


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Schedule(StrEnum):
    TWAP = "twap"
    VWAP = "vwap"
    ALMGREN_CHRISS = "almgren_chriss"


#: One row per symbol considered: what the sizing did and which limit bound it (stored with the decision).
TARGET_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "reference_price": pl.Float64(),
    "lot_size": pl.Float64(),
    "p_up": pl.Float64(),  # null: no signal
    "payoff_ratio": pl.Float64(),
    "kelly_full": pl.Float64(),  # signed full-Kelly stake, share of equity
    "vol_forecast": pl.Float64(),  # null: no forecast (plain historical scenarios)
    "raw_notional": pl.Float64(),  # kelly_fraction x full Kelly x regime multiplier x equity
    "current_position": pl.Float64(),
    "target_position": pl.Float64(),
    "target_notional": pl.Float64(),
    "symbol_cvar": pl.Float64(),  # scenario CVaR of the target position alone, currency
    "binding_limit": pl.String(),
}


@dataclass(frozen=True)
class Order:
    """One parent order (see ``ORDER_SCHEMA`` for the meaning of each field)."""

    decision_version: str
    decision_date: dt.date
    symbol: str
    side: Side
    quantity: float
    lot_size: float
    reference_price: float
    notional: float
    current_position: float
    target_position: float
    expected_cost_bps: float
    schedule: Schedule
    n_slices: int
    binding_limit: str

    def __post_init__(self) -> None:
        for name in ("quantity", "lot_size", "reference_price", "notional", "expected_cost_bps"):
            if not math.isfinite(getattr(self, name)):
                raise DecisionError(f"order {self.symbol}: {name} is not finite")
        if self.quantity <= 0 or self.lot_size <= 0 or self.n_slices < 1:
            raise DecisionError(f"order {self.symbol}: quantity, lot_size and n_slices must be positive")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Order:
        values = {f.name: row[f.name] for f in fields(cls)}
        values["side"] = Side(values["side"])
        values["schedule"] = Schedule(values["schedule"])
        return cls(**values)

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["side"] = str(self.side)
        row["schedule"] = str(self.schedule)
        return row


@dataclass(frozen=True, eq=False)
class TradeDecision:
    """A versioned decision: the orders (``ORDER_SCHEMA``), the per-symbol targets (``TARGET_SCHEMA``),
    the limits in force, a flat risk report and the manifest the version was hashed from."""

    version: str
    decision_date: dt.date
    orders: pl.DataFrame
    targets: pl.DataFrame
    limits: RiskLimits
    report: dict[str, Any]
    manifest: dict[str, Any]

    def __post_init__(self) -> None:
        if dict(self.orders.schema) != ORDER_SCHEMA:
            raise DecisionError(f"decision {self.version}: orders do not conform to ORDER_SCHEMA: {self.orders.schema}")
        if dict(self.targets.schema) != TARGET_SCHEMA:
            raise DecisionError(f"decision {self.version}: targets do not conform to TARGET_SCHEMA")

    def order_list(self) -> tuple[Order, ...]:
        return tuple(Order.from_row(row) for row in self.orders.iter_rows(named=True))
