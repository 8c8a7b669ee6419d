"""Helpers that turn domain results into Dagster metadata (the review surface in the UI)."""

from __future__ import annotations

import polars as pl


def markdown_table(frame: pl.DataFrame, max_rows: int = 20) -> str:
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_rows=max_rows,
        tbl_cols=-1,
        fmt_str_lengths=60,
    ):
        return str(frame.head(max_rows))
