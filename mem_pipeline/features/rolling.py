"""The features of ``fct_features_daily``: the computation the dbt Python model runs.

polars sorts the rows once, each symbol's rows together and in date order; one numba pass per symbol
(``window_kernel``, symbols in parallel) computes every windowed feature, and ``day_ranks`` the per-day ranks
(a numpy sort of a days x symbols panel per column). The rules are the mart's (``fct_features_daily.yml``):

* windows count rows of the symbol's own history, ending at the current row (a value at t reads rows <= t);
* a window value is null unless all its rows hold a value (no half-warm values);
* ranks are ``percent_rank`` across the symbols with a value that day.

Fullness is counted by the row's position among its symbol's rows in the frame handed in. On a full build the
frame holds every symbol's whole history, so that is the row's position in the history. An incremental run
hands in the rebuilt days with ``LOOKBACK_ROWS`` rows of each symbol before them (or the symbol's whole history,
if shorter), so every rebuilt row is full exactly when it would be in the whole history, and, with windows
recomputed every ``ANCHOR_EVERY`` rows of ``obs``, holds the same bits as in a full build; only the lookback
rows, which are history and not written, come out emptier.
"""

from __future__ import annotations

import threading

import numpy as np
import polars as pl

from mem_pipeline.features import day_ranks, window_kernel
from mem_pipeline.features.columns import FEATURE_COLUMNS, HISTORY_COLUMNS, KEY, LOOKBACK_ROWS, MARKET_COLUMNS, RANKED

#: Every window is recomputed from its own rows where ``obs`` is a multiple of this (see ``window_kernel``):
#: the most LOOKBACK_ROWS allow, so that a rebuilt row's windows never read a row before the lookback.
ANCHOR_EVERY = LOOKBACK_ROWS - window_kernel.LONGEST + 2

GK_BODY = 2 * window_kernel.LN2 - 1


def _symbol_date_order(history: pl.DataFrame) -> pl.Expr:
    """One unsigned integer per row that sorts the rows by symbol (lexically) and date: the symbol's code in an
    enum of the sorted symbols, and the day. The windows need only each symbol's rows together and in date
    order; the lexical order makes the output's row order the data's alone."""
    symbols = pl.Enum(history["symbol"].unique().sort())
    code = pl.col("symbol").cast(symbols).to_physical().cast(pl.UInt64)
    day = (pl.col("trade_date").cast(pl.Int32).cast(pl.Int64) + 2**31).cast(pl.UInt64)  # dates before 1970 too
    return code * 2**32 + day


def rolling_features(history: pl.DataFrame, market: pl.DataFrame) -> pl.DataFrame:
    """Every column of ``fct_features_daily`` but the ranks, for every row of ``history``.

    ``history``: ``int_bars__returns`` rows (``HISTORY_COLUMNS``), any order; for a symbol, a run of its
    consecutive rows. ``market``: ``int_market__daily`` (``MARKET_COLUMNS``). Returns the rows with each
    symbol's rows together and in date order, with ``KEY`` and the non-rank feature columns.
    """
    frame = history.select(HISTORY_COLUMNS).sort(_symbol_date_order(history))
    # Returns are null on a symbol's first row only, where every window reading them is blanked anyway.
    r, m = pl.col("ret_1d").fill_null(0.0), pl.col("mkt_ret_1d").fill_null(0.0)
    dollar_volume = pl.col("close") * pl.col("volume")
    inputs = frame.join(market.select(MARKET_COLUMNS), on="trade_date", how="left", maintain_order="left").select(
        pl.col("close").cast(pl.Float64),
        pl.col("volume").cast(pl.Float64),
        r.alias("r"),
        m.alias("m"),
        (r + m).alias("r_plus_m"),
        pl.col("mkt_ret_5d").fill_null(np.nan),
        pl.col("price_change").abs().fill_null(0.0).alias("abs_change"),
        (pl.col("log_range") ** 2).alias("range_sq"),
        (0.5 * pl.col("log_range") ** 2 - GK_BODY * pl.col("log_body") ** 2).alias("gk_term"),
        dollar_volume.alias("dollar_volume"),
        (pl.col("ret_1d").abs() / _nonzero(dollar_volume) * 1e6).fill_null(np.nan).alias("illiquidity"),
        pl.col("quoted_spread").fill_null(np.nan),
        pl.col("cs_spread").fill_null(0.0).alias("cs"),
        (pl.col("obs") % ANCHOR_EVERY == 0).alias("anchor"),
        (pl.col("symbol") != pl.col("symbol").shift(1)).fill_null(True).alias("first_row"),
    )
    starts = np.append(np.flatnonzero(inputs["first_row"].to_numpy()), frame.height).astype(np.int64)
    with _PARALLEL_KERNEL:
        windowed = window_kernel.features(
            tuple(_read_only(inputs[c].to_numpy()) for c in window_kernel.INPUTS),
            _read_only(starts),
            _read_only(inputs["anchor"].to_numpy()),
        )
    outputs = pl.DataFrame(dict(zip(window_kernel.OUTPUTS, windowed, strict=True))).fill_nan(None)
    return pl.concat([frame.select(*KEY, "close", "ret_1d"), outputs], how="horizontal")


def _nonzero(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr != 0).then(expr)


def percent_ranks(features: pl.DataFrame) -> pl.DataFrame:
    """The ``rank_`` columns: ``percent_rank`` of each ranked column among the symbols with a value that day,
    ``(rank_min - 1) / (n - 1)``, 0 for a day's only value (``day_ranks``)."""
    if features.is_empty():
        return features.with_columns(pl.lit(None, pl.Float64).alias(f"rank_{c}") for c in RANKED)
    day = features["trade_date"].cast(pl.Int32).to_numpy()
    ranks = day_ranks.percent_ranks(
        [features[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in RANKED], day - day.min()
    )
    return features.with_columns(
        pl.Series(f"rank_{c}", column).fill_nan(None) for c, column in zip(RANKED, ranks, strict=True)
    )


#: One caller at a time for the parallel kernel: the loading thread (``dbt_kernels_plugin``) and the model may
#: overlap, and numba's fallback threading layer (workqueue, where OpenMP and TBB are missing) aborts the
#: process on concurrent parallel calls.
_PARALLEL_KERNEL = threading.Lock()


def _read_only(values: np.ndarray) -> np.ndarray:
    """A read-only view: numba compiles (and caches) a kernel per array type, writability included, and
    polars hands out its buffers read-only or copies them writable; one type keeps to one compiled kernel."""
    view = values.view()
    view.flags.writeable = False
    return view


def load_kernels() -> None:
    """Load the kernels for the argument types ``features`` calls them with (in a fresh process numba's
    start-up takes about 0.4 s, cached code or not): on a thread, it overlaps other work."""
    columns = tuple(_read_only(np.zeros(1)) for _ in window_kernel.INPUTS)
    with _PARALLEL_KERNEL:
        window_kernel.features(columns, _read_only(np.array([0, 1])), _read_only(np.zeros(1, dtype=bool)))
    day_ranks.percent_ranks([np.zeros(1)], np.zeros(1, dtype=np.int64))


def features(history: pl.DataFrame, market: pl.DataFrame, rebuilt: pl.Expr | None = None) -> pl.DataFrame:
    """``fct_features_daily``'s rows (``KEY`` and ``FEATURE_COLUMNS``, in the mart's order) for the rows of
    ``history`` where ``rebuilt`` holds (all rows without it); the other rows are history for the windows."""
    computed = rolling_features(history, market)
    if rebuilt is not None:
        computed = computed.filter(rebuilt)
    return percent_ranks(computed).select(*KEY, *FEATURE_COLUMNS)
