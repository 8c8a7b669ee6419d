"""Helpers for pipeline tests."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import polars as pl

from assets.partitions import history_run


def ingest(start: dt.date, end: dt.date | None = None, **config: object) -> dict:
    """``dg.materialize`` arguments that run ``raw_bars`` over exactly the days ``start .. end``."""
    return history_run(start, end or start, ("raw_bars",), **config)


def features(start: dt.date, end: dt.date | None = None, **config: object) -> dict:
    """``dg.materialize`` arguments that rebuild the dbt history over exactly the days ``start .. end``."""
    return history_run(start, end or start, ("mem_dbt_history",), **config)


def build_features(resources: dict[str, object], start: dt.date, end: dt.date) -> dg.ExecuteInProcessResult:
    """The dbt layer over some days, in dependency order: the views and incremental models (one backfill run),
    then the full-rebuild tables (labels). Returns the history run."""
    from assets.defs.features.dbt import mem_dbt_history, mem_dbt_tables

    history = dg.materialize([mem_dbt_history], resources=resources, **features(start, end))
    assert history.success
    assert dg.materialize([mem_dbt_tables], resources=resources).success
    return history


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def assert_same_values(a: pl.DataFrame, b: pl.DataFrame, rtol: float = 1e-12) -> None:
    """Same rows, same nulls, floats equal to ``rtol`` relative (DuckDB's window sums may differ in the last bit
    when the rows read before the window differ, e.g. a one-day incremental run vs a long backfill)."""
    assert a.select("symbol", "trade_date").equals(b.select("symbol", "trade_date"))
    for column in a.columns:
        x, y = a[column], b[column]
        assert x.is_null().equals(y.is_null()), column
        if x.dtype.is_float():
            gap = ((x - y).abs() / y.abs().clip(lower_bound=1.0)).max()
            assert gap is None or gap <= rtol, f"{column}: relative gap {gap}"
        else:
            assert x.equals(y), column


#: What a decision day must keep through a restructuring: the orders' symbols, sides, sizes and schedules.
ORDER_FINGERPRINT = ("symbol", "side", "quantity", "target_position", "schedule", "n_slices")
GOLDEN_ORDERS = Path(__file__).parent / "golden"


def assert_orders_unchanged(orders: pl.DataFrame, name: str) -> None:
    """The orders equal ``golden/<name>.csv``, recorded from the code before the decision kernel was
    restructured (``MEM_RECORD_ORDERS=1`` rewrites it: only for a change that means to alter the orders)."""
    got = orders.select(ORDER_FINGERPRINT).sort("symbol")
    path = GOLDEN_ORDERS / f"{name}.csv"
    if os.environ.get("MEM_RECORD_ORDERS") == "1":
        got.write_csv(path)
    expected = pl.read_csv(path, schema=got.schema)
    assert got.height == expected.height, f"{got.height} orders, expected {expected.height}"
    assert got.equals(expected), got.join(expected, on="symbol", how="full", suffix="_expected")
