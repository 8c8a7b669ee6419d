"""Positions and equity as of a day, from the execution ledger's fills (point in time).

``positions_as_of``: signed units from the fills dated ``<= day``. ``equity_curve``: the account's
equity on each trading day from the first fill to ``day``: starting equity, minus what fills paid
(signed quantity x fill price, costs included in the price), plus positions marked at that day's close.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import sqlalchemy as sa

from mem_pipeline.core.paths import Paths
from mem_pipeline.core.schemas import POSITION_SCHEMA
from mem_pipeline.execution.ledger import LIVE, Ledger, fills
from mem_pipeline.execution.runtime import open_ledger
from mem_pipeline.features.warehouse import read_relation

FILL_SCHEMA = {"date": pl.Date(), "symbol": pl.String(), "signed_quantity": pl.Float64(), "price": pl.Float64()}


def ledger_fills(ledger: Ledger, day: dt.date) -> pl.DataFrame:
    """The fills dated ``<= day`` (``date, symbol, signed_quantity, price``), oldest first."""
    signed = sa.case((fills.c.side == "sell", -fills.c.quantity), else_=fills.c.quantity)
    query = sa.select(fills.c.date, fills.c.recorded_at, fills.c.symbol, signed.label("q"), fills.c.price).order_by(
        fills.c.fill_id
    )
    with ledger.engine.connect() as conn:
        rows = conn.execute(query).all()
    # A broker that reports only cumulative fills (ccxt) leaves the market date empty: its booking date stands in.
    dated = [(r.date or r.recorded_at.date(), r.symbol, r.q, r.price) for r in rows]
    frame = pl.DataFrame(dated, schema=FILL_SCHEMA, orient="row")
    return frame.filter(pl.col("date") <= day).sort("date", maintain_order=True)


def positions_as_of(fill_frame: pl.DataFrame) -> pl.DataFrame:
    """Signed units per symbol (``POSITION_SCHEMA``), flat symbols left out."""
    totals = fill_frame.group_by("symbol").agg(pl.col("signed_quantity").sum().alias("quantity"))
    return totals.filter(pl.col("quantity").abs() > 1e-12).sort("symbol").cast(POSITION_SCHEMA)  # type: ignore[arg-type]


def equity_curve(fill_frame: pl.DataFrame, closes: pl.DataFrame, starting_equity: float) -> pl.DataFrame | None:
    """``trade_date, equity`` from the first fill's date over the dates of ``closes`` (``symbol, trade_date,
    close``) and of the fills; None before any fill. A position is marked at its latest close, or at its latest
    fill price before its first close."""
    if fill_frame.height == 0:
        return None
    first = fill_frame["date"].min()
    days = (
        pl.concat([closes.filter(pl.col("trade_date") >= first)["trade_date"], fill_frame["date"].rename("trade_date")])
        .unique()
        .sort()
    )
    daily = fill_frame.group_by("date", "symbol").agg(
        pl.col("signed_quantity").sum().alias("quantity"),
        (pl.col("signed_quantity") * pl.col("price")).sum().alias("paid"),
        pl.col("price").last().alias("fill_price"),
    )
    symbols = fill_frame["symbol"].unique().sort()
    grid = pl.DataFrame({"trade_date": days}).join(pl.DataFrame({"symbol": symbols}), how="cross")
    book = (
        grid.join(daily.rename({"date": "trade_date"}), on=["trade_date", "symbol"], how="left")
        .join(closes.select("symbol", "trade_date", "close"), on=["symbol", "trade_date"], how="left")
        .sort("symbol", "trade_date")
        .with_columns(
            pl.col("quantity").fill_null(0.0).cum_sum().over("symbol").alias("position"),
            pl.col("paid").fill_null(0.0).cum_sum().over("symbol").alias("paid_to_date"),
            # the latest close, or the latest fill price until the first close
            pl.coalesce("close", "fill_price").forward_fill().over("symbol").alias("mark"),
        )
    )
    value = book.group_by("trade_date").agg(
        (pl.col("position") * pl.col("mark").fill_null(0.0)).sum().alias("marked"),
        pl.col("paid_to_date").sum().alias("paid"),
    )
    return value.sort("trade_date").select(
        "trade_date", (starting_equity - pl.col("paid") + pl.col("marked")).alias("equity")
    )


def working_rest(ledger: Ledger, day: dt.date) -> pl.DataFrame:
    """Signed unfilled units of the live orders decided on or before ``day`` (``POSITION_SCHEMA``): what the
    book will hold once they complete, so a decision never orders the same units twice."""
    rest: dict[str, float] = {}
    for record in ledger.children(states=LIVE):
        if record.decision_date is not None and record.decision_date <= day:
            left = max(record.quantity - record.filled_quantity, 0.0)
            rest[record.symbol] = rest.get(record.symbol, 0.0) + record.side.sign * left
    return pl.DataFrame(list(rest.items()), schema=POSITION_SCHEMA, orient="row")


def combine_positions(*frames: pl.DataFrame) -> pl.DataFrame:
    """Sum of position frames per symbol (flat symbols left out)."""
    stacked = pl.concat([f.cast(POSITION_SCHEMA) for f in frames])  # type: ignore[arg-type]
    totals = stacked.group_by("symbol").agg(pl.col("quantity").sum())
    return totals.filter(pl.col("quantity").abs() > 1e-12).sort("symbol")


def portfolio_state(
    paths: Paths, day: dt.date, starting_equity: float
) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """``(positions, equity curve)``: positions from the fills dated ``<= day`` plus the unfilled rest of live orders
    decided by then; equity from those fills. ``(None, None)`` while the ledger holds nothing."""
    ledger = open_ledger(paths)
    try:
        fill_frame = ledger_fills(ledger, day)
        working = working_rest(ledger, day)
    finally:
        ledger.close()
    if fill_frame.height == 0 and working.height == 0:
        return None, None
    held = fill_frame["symbol"].unique().to_list()
    closes = read_relation(paths, "int_bars__returns", ["symbol", "trade_date", "close"], day).filter(
        pl.col("symbol").is_in(held)
    )
    return combine_positions(positions_as_of(fill_frame), working), equity_curve(fill_frame, closes, starting_equity)
