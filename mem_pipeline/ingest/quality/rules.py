"""The row-level rules daily bars must satisfy, expressed as one Great Expectations suite.

Rules that need context beyond a single row (time order, jumps against the previous close) are
turned into helper columns first (``days_since_prev``, ``abs_log_return``), so that every rule is
an ordinary GE expectation whose failing row indices come back from the validation result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mem_pipeline.core.schemas import PRICE_COLUMNS

MAX_PRICE = 1e9
MAX_VOLUME = 1e15


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the gate (defaults in ``params.yaml``, section ``ingest``)."""

    max_rejected_share: float = 0.02
    max_abs_log_return: float = 0.5
    as_of: dt.date | None = None  # "today" for the future-date rule; None means today in UTC

    @classmethod
    def from_params(cls, ingest: dict[str, Any]) -> QualityConfig:
        return cls(
            max_rejected_share=float(ingest.get("max_rejected_share", cls.max_rejected_share)),
            max_abs_log_return=float(ingest.get("max_abs_log_return", cls.max_abs_log_return)),
        )

    def today(self) -> dt.date:
        return self.as_of or dt.datetime.now(dt.UTC).date()


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    expectations: Callable[[QualityConfig], list[Any]]


def _gxe() -> Any:
    import great_expectations.expectations as gxe  # ~4 s import: only when a batch is validated

    return gxe


def _not_null(_: QualityConfig) -> list[Any]:
    gxe = _gxe()
    cols = ("date", "symbol", *PRICE_COLUMNS, "volume")
    return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in cols]


def _positive_prices(_: QualityConfig) -> list[Any]:
    gxe = _gxe()
    return [
        gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True, max_value=MAX_PRICE)
        for c in PRICE_COLUMNS
    ]


def _ohlc(_: QualityConfig) -> list[Any]:
    gxe = _gxe()
    pairs = [("high", "low"), ("high", "open"), ("high", "close"), ("open", "low"), ("close", "low")]
    return [gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=a, column_B=b, or_equal=True) for a, b in pairs]


def _volume(_: QualityConfig) -> list[Any]:
    gxe = _gxe()
    return [gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0, max_value=MAX_VOLUME)]


def _spread(_: QualityConfig) -> list[Any]:
    gxe = _gxe()
    return [
        gxe.ExpectColumnValuesToBeBetween(column="bid", min_value=0, strict_min=True, max_value=MAX_PRICE),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="ask", column_B="bid", or_equal=True, ignore_row_if="either_value_is_missing"
        ),
    ]


def _unique(_: QualityConfig) -> list[Any]:
    return [_gxe().ExpectCompoundColumnsToBeUnique(column_list=["symbol", "date"])]


def _monotone(_: QualityConfig) -> list[Any]:
    return [_gxe().ExpectColumnValuesToBeBetween(column="days_since_prev", min_value=1)]


def _no_future(_: QualityConfig) -> list[Any]:
    return [_gxe().ExpectColumnValuesToBeBetween(column="days_after_as_of", max_value=0)]


def _plausible(cfg: QualityConfig) -> list[Any]:
    return [_gxe().ExpectColumnValuesToBeBetween(column="abs_log_return", max_value=cfg.max_abs_log_return)]


RULES: tuple[Rule, ...] = (
    Rule("not_null", "date, symbol, open, high, low, close and volume are present (no null or NaN)", _not_null),
    Rule("positive_prices", f"open, high, low, close are finite and in (0, {MAX_PRICE:g}]", _positive_prices),
    Rule("ohlc_consistent", "low <= open, close <= high", _ohlc),
    Rule("volume_non_negative", f"volume is finite and in [0, {MAX_VOLUME:g}]", _volume),
    Rule("spread_consistent", "where quoted: 0 < bid <= ask", _spread),
    Rule("unique_symbol_date", "one bar per (symbol, date)", _unique),
    Rule(
        "monotone_time",
        "each symbol's dates strictly increase within each input file, taken in date order (no repeated date)",
        _monotone,
    ),
    Rule("no_future_dates", "no bar is dated after today (UTC)", _no_future),
    Rule("plausible_returns", "|log(close / last accepted close)| <= max_abs_log_return", _plausible),
)
RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)


def add_context_columns(batch: pl.DataFrame, prior: pl.DataFrame, cfg: QualityConfig) -> pl.DataFrame:
    """Add ``days_since_prev`` and ``days_after_as_of`` (row-order rules) to a batch.

    ``prior`` holds the last stored bar before the batch per symbol (``symbol``, ``date``, ``close``):
    the first bar of a symbol in the batch is compared with it. Each file's rows are taken in (symbol,
    date) order, so rows merely out of order are not broken (``rows_out_of_order`` counts them) and
    ``monotone_time`` catches a date repeated within a file, or a first bar not after ``prior``'s.
    """
    # Across files only uniqueness matters (files are read in name order, not date order).
    prev_date = pl.col("date").shift(1).over("symbol", "source_file", order_by=["date", "source_row"])
    return (
        batch.join(prior.select("symbol", pl.col("date").alias("_prior_date")), on="symbol", how="left")
        .with_columns(prev=pl.coalesce(prev_date, pl.col("_prior_date")))
        .with_columns(
            days_since_prev=(pl.col("date") - pl.col("prev")).dt.total_days(),
            days_after_as_of=(pl.col("date") - pl.lit(cfg.today())).dt.total_days(),
        )
        .drop("prev", "_prior_date")
    )


def abs_log_returns(batch: pl.DataFrame, prior: pl.DataFrame, eligible: np.ndarray, bound: float) -> np.ndarray:
    """|log(close / reference)| per row, where the reference is the last *accepted* close.

    A lone bad tick is rejected alone (the next bar is compared with the close before it), while a
    level shift such as an unadjusted split keeps failing until the series is repaired: a symbol's
    later bars are never silently accepted on top of a break. Rows not ``eligible`` (already
    rejected by another rule) neither get a value nor move the reference. NaN means "not checked"
    (a symbol's first bar ever).
    """
    out = np.full(batch.height, np.nan)
    frame = (
        batch.select("symbol", "date", "close")
        .with_row_index("_i")
        .filter(pl.Series(eligible))
        .join(prior.select("symbol", pl.col("close").alias("_prior_close")), on="symbol", how="left")
        .sort("symbol", "date", "_i")
    )
    for _, group in frame.group_by("symbol", maintain_order=True):
        idx = group["_i"].to_numpy()
        close = group["close"].to_numpy()
        first_ref = group["_prior_close"][0]
        prev = np.concatenate([[np.nan if first_ref is None else first_ref], close[:-1]])
        naive = np.abs(np.log(close / prev))
        # Until the first jump the reference *is* the previous close: only then does a sequential pass differ.
        out[idx] = _chained(close, prev[0], bound) if np.any(naive > bound) else naive
    return out


def _chained(close: np.ndarray, reference: float, bound: float) -> np.ndarray:
    result = np.full(close.shape, np.nan)
    for k, price in enumerate(close):
        if np.isfinite(reference):
            result[k] = abs(np.log(price / reference))
            if result[k] > bound:
                continue
        reference = price
    return result


def rows_out_of_order(batch: pl.DataFrame) -> int:
    """Rows dated before an earlier row of the same symbol in the same file (file order, ``source_row``)."""
    if batch.is_empty():
        return 0
    latest = pl.col("date").cum_max().over("symbol", "source_file", order_by="source_row")
    return int(batch.select((pl.col("date") < latest).sum()).item())
