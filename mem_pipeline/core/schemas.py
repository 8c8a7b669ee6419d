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


#: One parent order of a trade decision: what ``mem_pipeline.decisions`` writes (one parquet file per
#: decision version under ``data/decisions/``) and what ``mem_pipeline.execution`` reads. Quantities are in
#: units of the instrument; ``quantity`` is unsigned (``side`` carries the sign) and a multiple of ``lot_size``;
#: positions are signed. ``binding_limit`` names the rule that set the size (e.g. ``kelly``, ``symbol_cap``,
#: ``gross_cap``, ``net_cap``, ``cvar_budget``, ``regime``, ``kill_switch``, ``lot_size``).
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
    "expected_cost_bps": pl.Float64(),  # slippage model's expected cost of the whole order
    "schedule": pl.String(),  # "twap" | "vwap" | "almgren_chriss"
    "n_slices": pl.Int64(),
    "binding_limit": pl.String(),
}
ORDER_COLUMNS: tuple[str, ...] = tuple(ORDER_SCHEMA)

#: Positions as the execution ledger reports them and the decisions read them: signed units per symbol.
POSITION_SCHEMA: dict[str, pl.DataType] = {"symbol": pl.String(), "quantity": pl.Float64()}
