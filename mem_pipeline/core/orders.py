"""The one order type: a parent order of a trade decision, as decided, stored, versioned, executed and booked.

``ORDER_SCHEMA`` is its row (one parquet file per decision version under ``data/decisions/``); ``Order`` is the
frozen value with one ``Side`` and one ``Schedule``. ``orders_from_frame`` validates a frame into orders: the
decision store, the execution engine and the ledger all go through it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import polars as pl

from mem_pipeline.core.errors import MemError

#: One parent order of a trade decision. Quantities are in units of the instrument; ``quantity`` is unsigned
#: (``side`` carries the sign) and a multiple of ``lot_size``; positions are signed. ``binding_limit`` names the
#: rule that set the size (e.g. ``kelly``, ``symbol_cap``, ``gross_cap``, ``net_cap``, ``cvar_budget``,
#: ``regime``, ``kill_switch``, ``lot_size``).
ORDER_SCHEMA: dict[str, pl.DataType] = {
    "decision_version": pl.String(),
    "decision_date": pl.Date(),  # the partition: every input is from data <= this date
    "symbol": pl.String(),
    "side": pl.String(),  # "buy" | "sell"
    "quantity": pl.Float64(),
    "lot_size": pl.Float64(),
    "reference_price": pl.Float64(),  # last close at decision time (quote currency)
    "notional": pl.Float64(),  # quantity * reference_price
    "current_position": pl.Float64(),
    "target_position": pl.Float64(),
    "expected_cost_bps": pl.Float64(),  # slippage model's expected cost of the whole order (null: unknown)
    "schedule": pl.String(),  # "twap" | "vwap" | "almgren_chriss"
    "n_slices": pl.Int64(),
    "binding_limit": pl.String(),
}
ORDER_COLUMNS: tuple[str, ...] = tuple(ORDER_SCHEMA)


class OrderError(MemError, ValueError):
    """An order row that breaks the order contract (names the order and the rule)."""


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @classmethod
    def parse(cls, value: str) -> Side:
        try:
            return cls(str(value).lower())
        except ValueError:
            raise OrderError(f"side must be 'buy' or 'sell', got {value!r}") from None


class Schedule(StrEnum):
    """How a parent order is split into child orders over the day (``mem_pipeline.execution.schedules``)."""

    TWAP = "twap"
    VWAP = "vwap"
    ALMGREN_CHRISS = "almgren_chriss"

    @classmethod
    def parse(cls, value: str) -> Schedule:
        try:
            return cls(str(value))
        except ValueError:
            raise OrderError(f"schedule must be one of {[s.value for s in cls]}, got {value!r}") from None


def parent_order_id(decision_version: str, symbol: str) -> str:
    """The parent order's ledger key (never sent to a broker): ``"par"`` + 24 hex of sha256(version, symbol)."""
    text = "\x1f".join(("parent", decision_version, symbol))  # unit separator: no ambiguous joins
    return "par" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


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
    expected_cost_bps: float  # NaN: unknown
    schedule: Schedule
    n_slices: int
    binding_limit: str

    def __post_init__(self) -> None:
        where = f"order {self.decision_version}/{self.symbol}"
        for name in ("quantity", "lot_size", "reference_price"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise OrderError(f"{where}: {name} must be a positive number, got {value}")
        for name in ("notional", "current_position", "target_position"):
            if not math.isfinite(getattr(self, name)):
                raise OrderError(f"{where}: {name} is not finite")
        if math.isinf(self.expected_cost_bps):
            raise OrderError(f"{where}: expected_cost_bps is infinite")
        lots = self.quantity / self.lot_size
        if abs(lots - round(lots)) > 1e-6 * max(1.0, lots):
            raise OrderError(f"{where}: quantity {self.quantity} is not a multiple of lot_size {self.lot_size}")
        if self.n_slices < 1:
            raise OrderError(f"{where}: n_slices must be >= 1, got {self.n_slices}")

    @property
    def parent_id(self) -> str:
        return parent_order_id(self.decision_version, self.symbol)

    @property
    def signed_quantity(self) -> float:
        return self.side.sign * self.quantity

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Order:
        cost = row["expected_cost_bps"]
        return cls(
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
            expected_cost_bps=float(cost) if cost is not None else math.nan,
            schedule=Schedule.parse(row["schedule"]),
            n_slices=int(row["n_slices"]),
            binding_limit=row["binding_limit"] or "",
        )

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["side"] = str(self.side)
        row["schedule"] = str(self.schedule)
        return row


def orders_from_frame(frame: pl.DataFrame) -> list[Order]:
    """Validate an order frame against ``ORDER_SCHEMA`` and return its orders.

    Refuses missing columns, nulls (but in ``expected_cost_bps`` and ``binding_limit``), any row ``Order``
    refuses, and two rows for one (decision_version, symbol): the client ids would repeat.
    """
    missing = [c for c in ORDER_COLUMNS if c not in frame.columns]
    if missing:
        raise OrderError(f"orders frame: missing columns {missing} (ORDER_SCHEMA has {list(ORDER_COLUMNS)})")
    try:
        typed = frame.select([pl.col(c).cast(t, strict=True) for c, t in ORDER_SCHEMA.items()])
    except pl.exceptions.PolarsError as exc:
        raise OrderError(f"orders frame: cannot cast to ORDER_SCHEMA ({exc})") from None
    required = [c for c in ORDER_COLUMNS if c not in ("expected_cost_bps", "binding_limit")]
    nulls = {c: typed[c].null_count() for c in required if typed[c].null_count()}
    if nulls:
        raise OrderError(f"orders frame: nulls in {nulls}")
    dup = typed.group_by("decision_version", "symbol").len().filter(pl.col("len") > 1)
    if dup.height:
        raise OrderError(f"orders frame: more than one order per (decision_version, symbol): {dup.rows()[:5]}")
    return [Order.from_row(row) for row in typed.iter_rows(named=True)]


def orders_to_frame(orders: list[Order]) -> pl.DataFrame:
    return pl.DataFrame([o.to_row() for o in orders], schema=ORDER_SCHEMA)
