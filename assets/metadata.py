"""Helpers that turn domain results into Dagster metadata (the review surface in the UI)."""

from __future__ import annotations

import base64
from pathlib import Path

import dagster as dg
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


def png_markdown(path: Path, alt: str) -> dg.MetadataValue:
    """A PNG inlined as markdown, so the plot shows in the asset's metadata in the UI."""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


def check(name: str, passed: bool, actual: float, threshold: float, **extra: object) -> dg.AssetCheckResult:
    """A check result that always reports the actual value beside its threshold."""
    return dg.AssetCheckResult(
        check_name=name, passed=bool(passed), metadata={"actual": actual, "threshold": threshold, **extra}
    )
