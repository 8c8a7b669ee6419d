"""The feature functions behind ``fct_features_daily`` (mem_pipeline/features/rolling.py) on hand-computed rows.

dbt's unit tests cannot reach a Python model, so the model's hand-computed cases are here; the whole model is
compared with an independent numpy reference through dbt in ``tests/dbt`` (and point in time there too).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import polars.selectors
import pytest

from mem_pipeline.features import day_ranks, window_kernel
from mem_pipeline.features.columns import FEATURE_COLUMNS, KEY
from mem_pipeline.features.rolling import ANCHOR_EVERY, LOOKBACK_ROWS, features, load_kernels

START = dt.date(2024, 1, 1)


def _history(symbol: str, closes: list[float], start: dt.date = START) -> pl.DataFrame:
    """``int_bars__returns`` rows of one symbol with the given closes (high/low 1% around, volume 1000)."""
    n = len(closes)
    prev = [None, *closes[:-1]]
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "trade_date": [start + dt.timedelta(days=i) for i in range(n)],
            "obs": list(range(1, n + 1)),
            "close": closes,
            "volume": [1000.0] * n,
            "ret_1d": [None if p is None else math.log(c / p) for c, p in zip(closes, prev, strict=True)],
            "price_change": [None if p is None else c - p for c, p in zip(closes, prev, strict=True)],
            "log_range": [math.log(1.01 / 0.99)] * n,
            "log_body": [0.0] * n,
            "quoted_spread": [None] * n,
            "cs_spread": [None, *([0.0] * (n - 1))],
        },
        schema_overrides={"ret_1d": pl.Float64, "price_change": pl.Float64, "quoted_spread": pl.Float64},
    )


def _market(days: list[dt.date], mkt_ret_5d: dict[dt.date, float] | None = None) -> pl.DataFrame:
    five = mkt_ret_5d or {}
    return pl.DataFrame(
        {"trade_date": days, "mkt_ret_1d": [0.0] * len(days), "mkt_ret_5d": [five.get(d) for d in days]},
        schema_overrides={"mkt_ret_5d": pl.Float64},
    )


def test_hand_computed_window_fullness_and_values() -> None:
    """Closes 100, 101, 99, 102, 103, 104 (hand-computed in Python, see below): ret_5d at day 6 = ln(1.04),
    rv_5d = the sample stdev of the five log returns = 0.017826369271359745, reversal_5d with a market 5-day
    return of 0.01 = -(ln(1.04) - 0.01). Every 5-row feature is null before day 6."""
    history = _history("AAA", [100, 101, 99, 102, 103, 104])
    day6 = START + dt.timedelta(days=5)
    out = features(history, _market(history["trade_date"].to_list(), {day6: 0.01}))
    assert out.columns == [*KEY, *FEATURE_COLUMNS]
    assert out["ret_5d"].head(5).is_null().all() and out["rv_5d"].head(5).is_null().all()
    assert out["reversal_5d"].head(5).is_null().all()
    last = out.row(5, named=True)
    assert last["ret_5d"] == pytest.approx(0.03922071315328133, abs=1e-15)
    assert last["rv_5d"] == pytest.approx(0.017826369271359745, abs=1e-15)
    assert last["reversal_5d"] == pytest.approx(-0.029220713153281327, abs=1e-15)


def test_a_window_never_reaches_into_the_previous_symbol() -> None:
    """A symbol with 5 rows after one with 30 has no 5-row return or volatility on its 5th row (its window
    would need 6 bars)."""
    a = _history("AAA", [100 + i for i in range(30)])
    b = _history("BBB", [50, 51, 52, 53, 54])
    out = features(pl.concat([b, a]), _market(a["trade_date"].to_list()))
    bbb = out.filter(pl.col("symbol") == "BBB")
    assert bbb["ret_5d"].is_null().all() and bbb["rv_5d"].is_null().all() and bbb["rsi_14"].is_null().all()
    # while AAA, on the same days, has them from its 6th row on (rv) and 15th (RSI: 14 rises, no loss: 100)
    aaa = out.filter(pl.col("symbol") == "AAA")
    assert aaa["rv_5d"].is_not_null().sum() == 30 - 5
    assert aaa["rsi_14"].drop_nulls().to_list() == [100.0] * (30 - 14)


def test_ranks_are_exact_percent_ranks_with_ties_at_their_lowest_rank() -> None:
    """10 symbols on one day with 20-day returns 0..9 (two tied at 3): percent_rank = (rank_min - 1) / 9,
    correctly rounded (7/9 = 0.7777777777777778, not ...77)."""
    frames, day = [], START + dt.timedelta(days=20)
    last_returns = [0, 1, 2, 3, 3, 5, 6, 7, 8, 9]
    for i, r in enumerate(last_returns):
        closes = [100.0] * 20 + [100.0 * math.exp(r / 100)]  # ret_20d = r / 100 on day 21
        frames.append(_history(f"S{i}", closes))
    out = features(pl.concat(frames), _market(frames[0]["trade_date"].to_list())).filter(pl.col("trade_date") == day)
    ranks = dict(zip(out["symbol"], out["rank_ret_20d"], strict=True))
    expected_min_rank = [1, 2, 3, 4, 4, 6, 7, 8, 9, 10]
    for i, rank in enumerate(expected_min_rank):
        assert ranks[f"S{i}"] == (rank - 1) / 9, (i, ranks[f"S{i}"])
    # a day's only value ranks 0; no value, no rank
    lone = features(frames[0], _market(frames[0]["trade_date"].to_list()))
    assert lone["rank_ret_20d"].drop_nulls().to_list() == [0.0]
    assert lone["rank_ret_20d"].null_count() == 20


def _walks(rng: np.random.Generator, lengths: dict[str, int], end: dt.date) -> pl.DataFrame:
    """Random-walk histories of the given lengths, all ending on ``end``."""
    frames = []
    for symbol, n in lengths.items():
        closes = (100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))).tolist()
        frames.append(_history(symbol, closes, end - dt.timedelta(days=n - 1)))
    return pl.concat(frames)


def _random_market(rng: np.random.Generator, history: pl.DataFrame) -> pl.DataFrame:
    days = sorted(history["trade_date"].unique().to_list())
    return _market(days, {d: 0.001 * i for i, d in enumerate(days)}).with_columns(
        mkt_ret_1d=pl.Series(rng.normal(0, 0.01, len(days)))
    )


def test_an_incremental_frame_gives_the_full_history_values_exactly() -> None:
    """The rebuilt days computed from LOOKBACK_ROWS rows of history hold the same bits as the values computed
    from the whole history (the windows are recomputed from their own rows every ANCHOR_EVERY rows of ``obs``),
    for every first rebuilt day over more than one anchor period, on random walks of three symbols of different
    lengths (one shorter than the lookback)."""
    rng = np.random.default_rng(5)
    end = START + dt.timedelta(days=399)
    history = _walks(rng, {"AAA": 400, "BBB": 250, "CCC": 40}, end)
    market = _random_market(rng, history)
    days = sorted(history["trade_date"].unique().to_list())
    full = features(history, market)
    assert full["beta_60d"].drop_nulls().len() > 0 and full["macd_signal_9"].drop_nulls().len() > 0
    for first in days[-ANCHOR_EVERY - 5 :]:
        first_obs = history.filter(pl.col("trade_date") >= first).group_by("symbol").agg(pl.col("obs").min())
        window = history.join(first_obs, on="symbol", suffix="_first").filter(
            pl.col("obs") >= pl.col("obs_first") - LOOKBACK_ROWS
        )
        assert window.height < history.height  # the frame really is shorter
        incremental = features(window.drop("obs_first"), market, pl.col("trade_date") >= first)
        assert incremental.equals(full.filter(pl.col("trade_date") >= first)), first


def test_a_symbols_values_do_not_depend_on_the_other_symbols() -> None:
    """Each symbol is computed on its own: alone or beside others, the same bits."""
    rng = np.random.default_rng(8)
    history = _walks(rng, {"AAA": 200, "MMM": 150, "ZZZ": 300}, START + dt.timedelta(days=299))
    market = _random_market(rng, history)
    together = features(history, market).filter(pl.col("symbol") == "MMM").drop(pl.selectors.starts_with("rank_"))
    alone = features(history.filter(pl.col("symbol") == "MMM"), market).drop(pl.selectors.starts_with("rank_"))
    assert together.equals(alone)


def _reference_zscore(x: np.ndarray, n: int) -> np.ndarray:
    """(x - mean) / sample std over the n rows ending at each row, each window from its own rows (two passes;
    no spread where the n values are equal, whatever their mean rounds to)."""
    z = np.full(x.size, np.nan)
    for i in range(n - 1, x.size):
        w = x[i - n + 1 : i + 1]
        sd = 0.0 if w.min() == w.max() else math.sqrt(((w - w.mean()) ** 2).sum() / (n - 1))
        z[i] = (x[i] - w.mean()) / sd if sd > 0 else np.nan
    return z


def test_flat_stretches_and_spikes_keep_the_windows_exact() -> None:
    """A running window keeps the rounding of what went through it. After 30 closes of 100.1 (whose mean over
    20 rows, summed, is 100.09999999999997), the 20-day volatility is exactly 0, the price z-score null (no
    spread), MACD exactly 0 and the RSI 100 (no change at all); and after a volume spike 10,000 times the
    usual leaves the window, and a 0.01% move after the flat stretch, the z-scores equal the two-pass values to
    1e-10 relative (running sums alone were 3e-8 off)."""
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 200)))
    closes[80:110] = 100.1
    closes[110:] = 100.1 * 1.0001 * closes[110:] / closes[110]
    history = _history("AAA", closes.tolist())
    volume = rng.uniform(4e5, 6e5, 200)
    volume[150] *= 1e4
    history = history.with_columns(volume=pl.Series(volume))
    out = features(history, _market(history["trade_date"].to_list()))
    flat = out.row(109, named=True)  # the 30th close of 100.1
    assert flat["rv_20d"] == 0.0 and flat["rv_5d"] == 0.0 and flat["macd"] == 0.0
    assert flat["price_z_20d"] is None and flat["rsi_14"] == 100.0
    for column, x in (("price_z_20d", closes), ("volume_z_20d", volume)):
        got, want = out[column].to_numpy(), _reference_zscore(x, 20)
        assert np.array_equal(np.isnan(got), np.isnan(want)), column
        ok = ~np.isnan(want)
        assert np.max(np.abs(got[ok] - want[ok]) / np.maximum(np.abs(want[ok]), 1.0)) < 1e-10, column


def test_the_result_does_not_depend_on_the_order_of_the_input_rows() -> None:
    """The same rows shuffled give the same bits, and come out sorted by symbol and date."""
    rng = np.random.default_rng(11)
    frames = [_history(f"S{i:02d}", (100 * np.exp(np.cumsum(rng.normal(0, 0.03, 120)))).tolist()) for i in range(12)]
    history = pl.concat(frames[::-1])
    days = sorted(history["trade_date"].unique().to_list())
    market = _market(days, {d: 0.0 for d in days}).with_columns(mkt_ret_1d=pl.Series(rng.normal(0, 0.01, len(days))))
    once = features(history, market)
    assert once.equals(features(history.sample(fraction=1.0, shuffle=True, seed=3), market))
    assert once.select(KEY).equals(once.select(KEY).sort(KEY))


def test_loading_the_kernels_loads_what_the_features_call() -> None:
    """numba compiles a kernel per argument type (read-only arrays are another type): the start-up that dbt
    runs ahead (``load_kernels``) must load the very kernels ``features`` then calls, or it saves nothing."""
    rng = np.random.default_rng(2)
    history = _walks(rng, {"AAA": 80, "BBB": 70}, START + dt.timedelta(days=79))
    features(pl.concat([history.head(60), history.tail(90)]), _random_market(rng, history))  # two chunks
    load_kernels()
    assert len(window_kernel.features.signatures) == 1, window_kernel.features.signatures
    assert len(day_ranks._ranks_in_order.signatures) == 1, day_ranks._ranks_in_order.signatures


def test_nothing_to_rebuild_gives_no_rows_with_the_marts_columns() -> None:
    """An update whose days are all before its first rebuilt day (or a history without rows) writes nothing,
    with the mart's columns and types."""
    history = _history("AAA", [100.0 + i for i in range(30)])
    market = _market(history["trade_date"].to_list())
    full = features(history, market)
    for empty in (
        features(history, market, pl.col("trade_date") > START + dt.timedelta(days=400)),
        features(history.head(0), market),
    ):
        assert empty.is_empty() and empty.schema == full.schema


def test_a_missing_quoted_spread_blanks_its_window_and_the_estimate_falls_back() -> None:
    """One missing quoted spread (row 25) leaves the 20 windows holding it without a mean, where spread_est
    takes the Corwin-Schultz mean instead (0 here); the windows before and after keep 0.001."""
    history = _history("AAA", [100.0 + i for i in range(50)])
    history = history.with_columns(quoted_spread=pl.Series([None if i == 24 else 0.001 for i in range(50)]))
    out = features(history, _market(history["trade_date"].to_list()))
    quoted, spread = out["quoted_spread_20d"].to_list(), out["spread_est"].to_list()
    assert all(q is None for q in quoted[:19]) and all(s is None for s in spread[:19])  # not full yet
    assert all(q == pytest.approx(0.001, abs=1e-18) for q in quoted[19:24] + quoted[44:])
    assert all(q is None for q in quoted[24:44]) and spread[24:44] == [0.0] * 20


def test_beta_and_correlation_against_least_squares_and_null_for_a_flat_market() -> None:
    """beta_60d is the OLS slope of the symbol's returns on the market's over 60 rows (numpy's polyfit) and
    corr_60d their correlation (corrcoef); with a market that never moves both are null (no variance)."""
    rng = np.random.default_rng(13)
    history = _walks(rng, {"AAA": 90}, START + dt.timedelta(days=89))
    flat = features(history, _market(history["trade_date"].to_list()))
    assert flat["rv_60d"].drop_nulls().len() == 90 - 60
    assert flat["beta_60d"].is_null().all() and flat["corr_60d"].is_null().all()
    market = _random_market(rng, history)
    out = features(history, market)
    r, m = history["ret_1d"].to_numpy()[-60:], market["mkt_ret_1d"].to_numpy()[-60:]
    assert out["beta_60d"][-1] == pytest.approx(np.polyfit(m, r, 1)[0], abs=1e-12)
    assert out["corr_60d"][-1] == pytest.approx(np.corrcoef(m, r)[0, 1], abs=1e-12)
    assert out["beta_60d"].drop_nulls().len() == 90 - 60
