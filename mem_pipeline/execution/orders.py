"""Frozen domain objects of execution: parent orders (from ``ORDER_SCHEMA``), child orders, fills, broker reports."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import polars as pl

from mem_pipeline.core.schemas import ORDER_COLUMNS, ORDER_SCHEMA
from mem_pipeline.execution.errors import ExecutionError
from mem_pipeline.execution.ids import parent_order_id
from mem_pipeline.execution.states import OrderState, Side

SCHEDULES = ("twap", "vwap", "almgren_chriss")


@dataclass(frozen=True)
class ParentOrder:
    """One row of a trade decision (``ORDER_SCHEMA``); ``quantity`` unsigned, ``side`` carries the sign."""

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
    schedule: str
    n_slices: int
    binding_limit: str

    @property
    def parent_id(self) -> str:
        return parent_order_id(self.decision_version, self.symbol)

    @property
    def signed_quantity(self) -> float:
        return self.side.sign * self.quantity


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


def parents_from_frame(orders: pl.DataFrame) -> list[ParentOrder]:
    """Validate a decision's order frame against ``ORDER_SCHEMA`` and return its parent orders.

    Refuses missing columns, nulls, non-positive quantity/price/lot, quantities not a multiple of the lot,
    unknown sides/schedules and two rows for one (decision_version, symbol): the client id would repeat.
    """
    missing = [c for c in ORDER_COLUMNS if c not in orders.columns]
    if missing:
        raise ExecutionError(f"orders frame: missing columns {missing} (ORDER_SCHEMA has {list(ORDER_COLUMNS)})")
    try:
        frame = orders.select([pl.col(c).cast(t, strict=True) for c, t in ORDER_SCHEMA.items()])
    except pl.exceptions.PolarsError as exc:
        raise ExecutionError(f"orders frame: cannot cast to ORDER_SCHEMA ({exc})") from exc
    required = [c for c in ORDER_COLUMNS if c not in ("expected_cost_bps", "binding_limit")]
    nulls = {c: frame[c].null_count() for c in required if frame[c].null_count()}
    if nulls:
        raise ExecutionError(f"orders frame: nulls in {nulls}")
    dup = frame.group_by("decision_version", "symbol").len().filter(pl.col("len") > 1)
    if dup.height:
        raise ExecutionError(f"orders frame: more than one order per (decision_version, symbol): {dup.rows()[:5]}")
    parents = []
    for row in frame.iter_rows(named=True):
        where = f"order {row['decision_version']}/{row['symbol']}"
        for column in ("quantity", "lot_size", "reference_price"):
            if not (math.isfinite(row[column]) and row[column] > 0):
                raise ExecutionError(f"{where}: {column} must be a positive number, got {row[column]}")
        lots = row["quantity"] / row["lot_size"]
        if abs(lots - round(lots)) > 1e-6 * max(1.0, lots):
            raise ExecutionError(f"{where}: quantity {row['quantity']} is not a multiple of lot_size {row['lot_size']}")
        if row["schedule"] not in SCHEDULES:
            raise ExecutionError(f"{where}: schedule must be one of {list(SCHEDULES)}, got {row['schedule']!r}")
        if row["n_slices"] < 1:
            raise ExecutionError(f"{where}: n_slices must be >= 1, got {row['n_slices']}")
        parents.append(
            ParentOrder(
                decision_version=row["decision_version"],
                decision_date=row["decision_date"],
                symbol=row["symbol"],
                side=Side.parse(row["side"]),
                quantity=float(row["quantity"]),
                lot_size=float(row["lot_size"]),
                reference_price=float(row["reference_price"]),
                notional=float(row["notional"]),
                current_position=float(row["current_position"]),
                target_position=float(row["target_position"]),
                expected_cost_bps=float(row["expected_cost_bps"] if row["expected_cost_bps"] is not None else "nan"),
                schedule=row["schedule"],
                n_slices=int(row["n_slices"]),
                binding_limit=row["binding_limit"] or "",
            )
        )
    return parents
