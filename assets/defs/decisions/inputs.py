"""Where a decision's portfolio state comes from: the execution ledger's fills up to the day."""

import datetime as dt

import polars as pl

from mem_pipeline.execution.engine import ExecutionConfig
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.params import section
from mem_pipeline.paths import Paths
from mem_pipeline.portfolio import combine_positions, equity_curve, ledger_fills, positions_as_of, working_rest
from mem_pipeline.risk.config import RiskConfig
from mem_pipeline.warehouse import read_relation


def open_ledger(paths: Paths) -> Ledger:
    config = ExecutionConfig.from_params(section("execution"))
    return Ledger.open(config.engine.ledger_url or None, paths=paths)


def portfolio_state(paths: Paths, day: dt.date) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """``(positions, equity curve)``: positions from the fills dated ``<= day`` plus the unfilled rest of live orders
    decided by then; equity from those fills. ``(None, None)`` while the ledger holds nothing."""
    ledger = open_ledger(paths)
    try:
        fills = ledger_fills(ledger, day)
        working = working_rest(ledger, day)
    finally:
        ledger.close()
    if fills.height == 0 and working.height == 0:
        return None, None
    held = fills["symbol"].unique().to_list()
    closes = read_relation(paths, "int_bars__returns", ["symbol", "trade_date", "close"], day).filter(
        pl.col("symbol").is_in(held)
    )
    starting = RiskConfig.from_params(section("risk")).account_equity
    return combine_positions(positions_as_of(fills), working), equity_curve(fills, closes, starting)
