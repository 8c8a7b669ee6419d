"""Read-only access to the DuckDB warehouse that dbt builds (dbt is its only writer)."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from mem_pipeline.core.paths import Paths


def read_relation(
    paths: Paths, relation: str, columns: list[str], as_of: dt.date | None = None, since: dt.date | None = None
) -> pl.DataFrame:
    """``columns`` of a dbt relation, rows with ``since <= trade_date <= as_of`` (None: unbounded), sorted by key.

    ``relation`` and ``columns`` are identifiers chosen by MEM's code, quoted here; the dates are parameters.
    """
    select = ", ".join(f'"{c}"' for c in columns)
    order = ", ".join(f'"{c}"' for c in ("symbol", "trade_date") if c in columns)
    sql = (
        f'select {select} from "{relation}" '
        f"where (? is null or trade_date <= ?) and (? is null or trade_date >= ?) order by {order}"
    )
    with duckdb.connect(str(paths.warehouse / "mem.duckdb"), read_only=True) as con:
        return con.sql(sql, params=[as_of, as_of, since, since]).pl()


def relation_columns(paths: Paths, relation: str) -> list[str]:
    """The column names of a dbt relation, in table order."""
    with duckdb.connect(str(paths.warehouse / "mem.duckdb"), read_only=True) as con:
        return [row[0] for row in con.sql(f'describe "{relation}"').fetchall()]
