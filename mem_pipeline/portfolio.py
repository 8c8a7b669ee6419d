"""Positions and equity as of a day, from the execution ledger's fills (point in time).

``positions_as_of``: signed units from the fills dated ``<= day``. ``equity_curve``: the account's
equity on each trading day from the first fill to ``day``: starting equity, minus what fills paid
(signed quantity x fill price, costs included in the price), plus positions marked at that day's close.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import sqlalchemy as sa

from mem_pipeline.execution.ledger import Ledger, fills
from mem_pipeline.schemas import POSITION_SCHEMA

FILL_SCHEMA = {"date": pl.Date(), "symbol": pl.String(), "signed_quantity": pl.Float64(), "price": pl.Float64()}


def ledger_fills(ledger: Ledger, day: dt.date) -> pl.DataFrame:
    """The fills dated ``<= day`` (``date, symbol, signed_quantity, price``), oldest first."""
    signed = sa.case((fills.c.side == "sell", -fills.c.quantity), else_=fills.c.quantity)
    query = (
        sa.select(fills.c.date, fills.c.symbol, signed.label("signed_quantity"), fills.c.price)
        .where(fills.c.date.is_not(None) & (fills.c.date <= day))
        .order_by(fills.c.date, fills.c.fill_id)
    )
    with ledger.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query).all()]
    return pl.DataFrame(rows, schema=FILL_SCHEMA, orient="row")


def positions_as_of(fill_frame: pl.DataFrame) -> pl.DataFrame:
    """Signed units per symbol (``POSITION_SCHEMA``), flat symbols left out."""
    totals = fill_frame.group_by("symbol").agg(pl.col("signed_quantity").sum().alias("quantity"))
    return totals.filter(pl.col("quantity").abs() > 1e-12).sort("symbol").cast(POSITION_SCHEMA)  # type: ignore[arg-type]


def equity_curve(fill_frame: pl.DataFrame, closes: pl.DataFrame, starting_equity: float) -> pl.DataFrame | None:
    """``trade_date, equity`` from the first fill's date over the dates of ``closes`` (``symbol, trade_date,
    close``); None before any fill. A symbol without a close on a day is marked at its last close."""
    if fill_frame.height == 0:
        return None
    first = fill_frame["date"].min()
    days = closes.filter(pl.col("trade_date") >= first)["trade_date"].unique().sort()
    if days.len() == 0:
        return None
    daily = fill_frame.group_by("date", "symbol").agg(
        pl.col("signed_quantity").sum().alias("quantity"),
        (pl.col("signed_quantity") * pl.col("price")).sum().alias("paid"),
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
            pl.col("close").forward_fill().over("symbol"),
        )
    )
    value = book.group_by("trade_date").agg(
        (pl.col("position") * pl.col("close").fill_null(0.0)).sum().alias("marked"),
        pl.col("paid_to_date").sum().alias("paid"),
    )
    return value.sort("trade_date").select(
        "trade_date", (starting_equity - pl.col("paid") + pl.col("marked")).alias("equity")
    )
