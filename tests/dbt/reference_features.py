"""An independent reference implementation of ``fct_features_daily`` and ``fct_labels_daily``.

Written from the feature definitions (``fct_features_daily.yml`` and the math), in numpy on one symbol's
history at a time, not by translating the SQL. It shares only the conventions of the marts:

* Windows are per symbol, in rows ordered by date (a missing day is simply not a row), and a window
  statistic is null unless all ``n`` rows of the window hold a value ("no half-warm values").
* Returns are log returns; standard deviations are sample ones (ddof = 1).
* The market is equal-weighted over the symbols with a return that day,
  ``ln(1 + mean(exp(ret_1d) - 1))``, and its 5-day return is the sum over the last 5 market days.
* Percent ranks are per date over the symbols with a value: ``(rank - 1) / (n - 1)``, ties share the
  lowest rank, and a lone value ranks 0 (SQL ``percent_rank``).

Nulls are NaN inside this module (the inputs are valid bars, so a NaN never means anything else) and
become polars nulls in the returned frames. Where a formula has an algebraically equal but numerically
different form (2 tanh(a/2) for the Corwin-Schultz spread, 100 g / (g + l) for the RSI, log1p/expm1 for the
market), the other form is used on purpose: agreement to 1e-9 then shows the math, not the float path.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from mem_pipeline.features.columns import FEATURE_COLUMNS, KEY, LABEL_COLUMNS, LABEL_HORIZONS, RANKED  # noqa: F401

Array = NDArray[np.float64]

LN2 = math.log(2.0)


# --------------------------------------------------------------------------------------------
# Row-window primitives on one symbol's history (NaN = null)
# --------------------------------------------------------------------------------------------


def lag(x: Array, k: int) -> Array:
    """``x`` k rows earlier (NaN for the first k rows)."""
    out = np.full(len(x), np.nan)
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def lead(x: Array, k: int) -> Array:
    """``x`` k rows later (NaN for the last k rows)."""
    out = np.full(len(x), np.nan)
    if k < len(x):
        out[: len(x) - k] = x[k:]
    return out


def rolling(x: Array, n: int, stat: Callable[[Array], Array]) -> Array:
    """``stat`` of the ``n`` rows ending at each row; NaN unless all ``n`` of them are non-null.

    ``stat`` maps a ``(windows, n)`` array to one value per window.
    """
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    windows = sliding_window_view(x, n)
    full = ~np.isnan(windows).any(axis=1)
    values = np.full(len(windows), np.nan)
    if full.any():
        values[full] = stat(windows[full])
    out[n - 1 :] = values
    return out


def mean(w: Array) -> Array:
    return w.mean(axis=1)


def maximum(w: Array) -> Array:
    return w.max(axis=1)


def sample_std(w: Array) -> Array:
    """Two-pass sample standard deviation (ddof = 1); exactly 0 for a constant window."""
    centred = w - w.mean(axis=1, keepdims=True)
    var = (centred * centred).sum(axis=1) / (w.shape[1] - 1)
    var[w.max(axis=1) == w.min(axis=1)] = 0.0  # the mean of n equal floats need not round back to them
    return np.sqrt(var)


def zscore(x: Array, n: int) -> Array:
    """(x - mean_n) / std_n; null where the window is not full or its std is 0."""
    std = rolling(x, n, sample_std)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, (x - rolling(x, n, mean)) / std, np.nan)


def slope_and_corr(y: Array, x: Array, n: int) -> tuple[Array, Array]:
    """OLS slope of y on x and their correlation over the last n rows, where all n rows hold both."""
    slope, corr = np.full(len(y), np.nan), np.full(len(y), np.nan)
    if len(y) < n:
        return slope, corr
    wy, wx = sliding_window_view(y, n), sliding_window_view(x, n)
    full = ~(np.isnan(wy) | np.isnan(wx)).any(axis=1)
    wy, wx = wy[full], wx[full]
    dy = wy - wy.mean(axis=1, keepdims=True)
    dx = wx - wx.mean(axis=1, keepdims=True)
    cov = (dx * dy).sum(axis=1) / (n - 1)
    var_x = (dx * dx).sum(axis=1) / (n - 1)
    var_y = (dy * dy).sum(axis=1) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope_full = np.where(var_x > 0, cov / var_x, np.nan)
        corr_full = np.where((var_x > 0) & (var_y > 0), cov / np.sqrt(var_x * var_y), np.nan)
    rows = np.flatnonzero(full) + n - 1
    slope[rows], corr[rows] = slope_full, corr_full
    return slope, corr


def corwin_schultz(high: Array, low: Array) -> Array:
    """Corwin & Schultz (2012) two-day spread from today's and yesterday's high/low, floored at 0.

    beta = sum of the two squared one-day log ranges, gamma = squared log range of the two-day high/low,
    alpha = (sqrt(2 beta) - sqrt(beta)) / (3 - 2 sqrt 2) - sqrt(gamma / (3 - 2 sqrt 2)),
    S = 2 (e^alpha - 1) / (1 + e^alpha) = 2 tanh(alpha / 2). Null on the first row (no yesterday).
    """
    prev_high, prev_low = lag(high, 1), lag(low, 1)
    beta = np.log(high / low) ** 2 + np.log(prev_high / prev_low) ** 2
    gamma = np.log(np.maximum(high, prev_high) / np.minimum(low, prev_low)) ** 2
    k = 3.0 - 2.0 * math.sqrt(2.0)
    alpha = (math.sqrt(2.0) - 1.0) * np.sqrt(beta) / k - np.sqrt(gamma / k)
    return np.maximum(2.0 * np.tanh(alpha / 2.0), 0.0)  # np.maximum keeps NaN


def percent_rank(values: Array) -> Array:
    """SQL percent_rank over the non-null values: (rank - 1) / (n - 1), ties at the lowest rank; NaN stays NaN."""
    out = np.full(len(values), np.nan)
    present = ~np.isnan(values)
    v = values[present]
    if len(v) == 0:
        return out
    below = np.searchsorted(np.sort(v), v, side="left")  # rank - 1 = number of strictly smaller values
    out[present] = below / (len(v) - 1) if len(v) > 1 else 0.0
    return out


# --------------------------------------------------------------------------------------------
# The marts
# --------------------------------------------------------------------------------------------


def _bars(bars: pl.DataFrame) -> pl.DataFrame:
    return bars.select(
        pl.col("symbol").cast(pl.String),
        pl.col("date").cast(pl.Date).alias("trade_date"),
        *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume", "bid", "ask")),
    ).sort(KEY)


def _col(frame: pl.DataFrame, name: str) -> Array:
    return frame[name].cast(pl.Float64).to_numpy().astype(np.float64, copy=True)


def _to_polars(columns: dict[str, Array]) -> dict[str, pl.Series]:
    return {name: pl.Series(name, values, dtype=pl.Float64).fill_nan(None) for name, values in columns.items()}


def reference_market(bars: pl.DataFrame) -> pl.DataFrame:
    """``trade_date, mkt_ret_1d, mkt_ret_5d, n_symbols``: one row per date on which any symbol has a return."""
    frames = []
    for (_,), g in _bars(bars).group_by(["symbol"], maintain_order=True):
        close = _col(g, "close")
        frames.append(g.select("trade_date").with_columns(ret=pl.Series(np.log(close / lag(close, 1))).fill_nan(None)))
    returns = pl.concat(frames).drop_nulls("ret")
    daily = (
        returns.group_by("trade_date")
        .agg(
            pl.col("ret")
            .map_batches(
                lambda r: pl.Series([math.log1p(float(np.mean(np.expm1(r.to_numpy()))))]),
                returns_scalar=True,
                return_dtype=pl.Float64,
            )
            .alias("mkt_ret_1d"),
            pl.len().alias("n_symbols"),
        )
        .sort("trade_date")
    )
    mkt_5d = rolling(_col(daily, "mkt_ret_1d"), 5, lambda w: w.sum(axis=1))
    return daily.with_columns(pl.Series("mkt_ret_5d", mkt_5d).fill_nan(None))


def _symbol_features(g: pl.DataFrame) -> dict[str, Array]:
    """Every non-rank feature of one symbol's history (rows sorted by date, market columns joined)."""
    o, h, lo, c, v = (_col(g, name) for name in ("open", "high", "low", "close", "volume"))
    bid, ask = _col(g, "bid"), _col(g, "ask")
    mkt_1d, mkt_5d = _col(g, "mkt_ret_1d"), _col(g, "mkt_ret_5d")

    ret = np.log(c / lag(c, 1))
    ret_k = {k: np.log(c / lag(c, k)) for k in (5, 20, 60)}
    log_range, log_body = np.log(h / lo), np.log(c / o)

    change = c - lag(c, 1)
    avg_gain = rolling(np.maximum(change, 0.0), 14, mean)
    avg_loss = rolling(np.maximum(-change, 0.0), 14, mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where(avg_loss == 0.0, 100.0, 100.0 * avg_gain / (avg_gain + avg_loss))
    rsi[np.isnan(avg_loss)] = np.nan

    macd = (rolling(c, 12, mean) - rolling(c, 26, mean)) / c

    dollar_volume = c * v
    with np.errstate(divide="ignore", invalid="ignore"):
        illiquidity = np.where(dollar_volume != 0.0, np.abs(ret) / dollar_volume * 1e6, np.nan)
        valid_quote = (bid > 0) & (ask >= bid)
        quoted = np.where(valid_quote, (ask - bid) / ((ask + bid) / 2.0), np.nan)
    quoted_20d = rolling(quoted, 20, mean)
    cs_20d = rolling(corwin_schultz(h, lo), 20, mean)

    gk_mean = rolling(0.5 * log_range**2 - (2.0 * LN2 - 1.0) * log_body**2, 20, mean)
    beta, corr = slope_and_corr(ret, mkt_1d, 60)

    return {
        "close": c,
        "ret_1d": ret,
        "ret_5d": ret_k[5],
        "ret_20d": ret_k[20],
        "ret_60d": ret_k[60],
        "rv_5d": rolling(ret, 5, sample_std),
        "rv_20d": rolling(ret, 20, sample_std),
        "rv_60d": rolling(ret, 60, sample_std),
        "parkinson_20d": np.sqrt(rolling(log_range**2, 20, mean) / (4.0 * LN2)),
        "garman_klass_20d": np.sqrt(np.maximum(gk_mean, 0.0)),
        "momentum_60_5": np.log(lag(c, 5) / lag(c, 60)),
        "reversal_5d": mkt_5d - ret_k[5],
        "macd": macd,
        "price_z_20d": zscore(c, 20),
        "volume_z_20d": zscore(v, 20),
        "dollar_volume_20d": rolling(dollar_volume, 20, mean),
        "amihud_20d": rolling(illiquidity, 20, mean),
        "quoted_spread_20d": quoted_20d,
        "cs_spread_20d": cs_20d,
        "beta_60d": beta,
        "corr_60d": corr,
        "drawdown_60d": c / rolling(c, 60, maximum) - 1.0,
        "rsi_14": rsi,
        "macd_signal_9": rolling(macd, 9, mean),
        "spread_est": np.where(np.isnan(quoted_20d), cs_20d, quoted_20d),
    }


def reference_features(bars: pl.DataFrame) -> pl.DataFrame:
    """``fct_features_daily`` from raw bars (BAR_SCHEMA columns), sorted by symbol and date."""
    market = reference_market(bars).select("trade_date", "mkt_ret_1d", "mkt_ret_5d")
    joined = _bars(bars).join(market, on="trade_date", how="left").sort(KEY)
    frames = []
    for (_,), g in joined.group_by(["symbol"], maintain_order=True):
        frames.append(g.select(KEY).with_columns(**_to_polars(_symbol_features(g))))
    features = pl.concat(frames).sort("trade_date", "symbol")
    ranks = []
    for (_,), day in features.group_by(["trade_date"], maintain_order=True):
        ranks.append(
            day.select(KEY).with_columns(
                **_to_polars({f"rank_{name}": percent_rank(_col(day, name)) for name in RANKED})
            )
        )
    return features.join(pl.concat(ranks), on=list(KEY), how="left").select(*KEY, *FEATURE_COLUMNS).sort(KEY)


def reference_labels(bars: pl.DataFrame) -> pl.DataFrame:
    """``fct_labels_daily``: forward log returns over 1/5/20 rows, up = 1 if > 0 else 0, null without a close."""
    frames = []
    for (_,), g in _bars(bars).group_by(["symbol"], maintain_order=True):
        c = _col(g, "close")
        fwd = _to_polars({f"fwd_ret_{k}d": np.log(lead(c, k) / c) for k in LABEL_HORIZONS})
        up = {f"up_{k}d": (fwd[f"fwd_ret_{k}d"] > 0).cast(pl.Int32) for k in LABEL_HORIZONS}  # null stays null
        frames.append(g.select(KEY).with_columns(**fwd, **up))
    return pl.concat(frames).select(*KEY, *LABEL_COLUMNS).sort(KEY)
