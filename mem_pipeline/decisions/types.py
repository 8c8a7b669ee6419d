"""The frozen ``TradeDecision``: its orders (``mem_pipeline.core.orders.Order`` rows) and per-symbol targets."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from mem_pipeline.core.errors import MemError
from mem_pipeline.core.orders import ORDER_SCHEMA, Order, orders_from_frame
from mem_pipeline.risk.limits import RiskLimits


class DecisionError(MemError, ValueError):
    """Bad decision input or configuration, or a conflicting write to the decision store."""


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
        return tuple(orders_from_frame(self.orders))
