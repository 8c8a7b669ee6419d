"""The canonical daily-bar schema every source delivers and the lake stores.

One row per (symbol, date). Prices are in the instrument's quote currency; ``volume`` is in
units of the instrument (shares, coins) and may be fractional. ``bid``/``ask`` are the closing
quote where a source has one, null otherwise. ``source_file``/``source_row`` trace each row back
to the exact input it came from (file path or a source URI, and the 1-based row in it).
"""

from __future__ import annotations

import polars as pl

BAR_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "bid": pl.Float64(),
    "ask": pl.Float64(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
}
BAR_COLUMNS: tuple[str, ...] = tuple(BAR_SCHEMA)
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
KEY_COLUMNS: tuple[str, ...] = ("symbol", "date")
OPTIONAL_COLUMNS: tuple[str, ...] = ("bid", "ask")


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BAR_SCHEMA)


def conform_bars(frame: pl.DataFrame) -> pl.DataFrame:
    """Select the canonical columns in order, add missing optional ones as nulls, cast losslessly.

    Callers (the source adapters) are responsible for raising a clear ``SchemaError`` on anything
    they cannot map; this only normalises frames that already carry the right columns.
    """
    for column in OPTIONAL_COLUMNS:
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Float64()).alias(column))
    return frame.select([pl.col(c).cast(t, strict=True) for c, t in BAR_SCHEMA.items()])


#: Positions as the execution ledger reports them and the decisions read them: signed units per symbol.
POSITION_SCHEMA: dict[str, pl.DataType] = {"symbol": pl.String(), "quantity": pl.Float64()}

#: A fill as a row of the slippage model's training set: the market features known before the order
#: (``size_over_adv``, spread in bps, daily vol, the child's participation, side as +1/-1 or "buy"/"sell"),
#: the realized cost in bps (positive = worse than the reference price) and the fill's market date.
SLIPPAGE_FEATURES: tuple[str, ...] = ("size_over_adv", "spread_bps", "sigma", "participation", "side")
SLIPPAGE_TARGET = "realized_cost_bps"
SLIPPAGE_DATE = "date"
