"""A straightforward pandas version of ``fct_features_daily``, as a quant would write it first.

Used by ``bench/bench_features.py`` as the baseline the Python model and DuckDB SQL are compared with. It
computes every column of the mart (27 features and the 5 cross-sectional ranks) from the raw bars, with the
mart's rules:

* windows count rows of the symbol's own history (``rolling(n)`` on a symbol's rows sorted by date), and a
  window value is NaN unless all ``n`` rows hold a value (pandas' default ``min_periods=n`` is exactly the
  SQL ``count(x) over (... n rows) = n`` guard);
* the equal-weighted market return is ``ln(1 + mean(exp(ret_1d) - 1))`` over the symbols with a return that
  day, and its 5-day sum is over the last 5 market days;
* ranks are ``percent_rank`` among the symbols with a value that day: ``(rank_min - 1) / (n - 1)``, 0 when
  only one symbol has a value.

The code is deliberately the plain ``groupby('symbol')[col].rolling(n).agg()`` style, one column at a time,
not a vectorised rewrite: it is the baseline, not a contender.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mem_pipeline.features.columns import FEATURE_COLUMNS as REFERENCE_COLUMNS
from mem_pipeline.features.columns import RANKED

LN2 = math.log(2.0)
# Column order of the mart, so frames compare column by column (names shared with the test reference).
FEATURE_COLUMNS = ("symbol", "trade_date", *REFERENCE_COLUMNS)


def _rolling(g, column: str, n: int, how: str) -> pd.Series:
    """``how`` of ``column`` over each symbol's last ``n`` rows, aligned back on the frame's index."""
    return getattr(g[column].rolling(n), how)().reset_index(level=0, drop=True)


def intermediates(bars: pd.DataFrame) -> pd.DataFrame:
    """What ``int_bars__returns`` and ``int_market__daily`` hold, joined, from raw bars (``date, symbol, open,
    high, low, close, volume, bid, ask``): the bars sorted by symbol and date with their one-day changes,
    spreads and the day's market return. ``features(intermediates(bars))`` is the mart."""
    df = bars[["symbol", "date", "open", "high", "low", "close", "volume", "bid", "ask"]].rename(
        columns={"date": "trade_date"}
    )
    df = df.sort_values(["symbol", "trade_date"], ignore_index=True)
    g = df.groupby("symbol", sort=False)

    # int_bars__returns: previous bar, one-day changes, spreads
    prev_close = g["close"].shift(1)
    prev_high = g["high"].shift(1)
    prev_low = g["low"].shift(1)
    df["ret_1d"] = np.log(df["close"] / prev_close)
    df["price_change"] = df["close"] - prev_close
    df["log_range"] = np.log(df["high"] / df["low"])
    df["log_body"] = np.log(df["close"] / df["open"])
    spread_ok = (df["bid"] > 0) & (df["ask"] >= df["bid"])
    df["quoted_spread"] = ((df["ask"] - df["bid"]) / ((df["ask"] + df["bid"]) / 2)).where(spread_ok)
    cs_beta = df["log_range"] ** 2 + np.log(prev_high / prev_low) ** 2
    cs_gamma = np.log(np.maximum(df["high"], prev_high) / np.minimum(df["low"], prev_low)) ** 2
    k = 3 - 2 * math.sqrt(2)
    cs_alpha = (np.sqrt(2 * cs_beta) - np.sqrt(cs_beta)) / k - np.sqrt(cs_gamma / k)
    df["cs_spread"] = (2 * (np.exp(cs_alpha) - 1) / (1 + np.exp(cs_alpha))).clip(lower=0)

    # int_market__daily: equal-weighted market over the symbols with a return that day
    market = (
        df.dropna(subset=["ret_1d"])
        .assign(simple=lambda d: np.exp(d["ret_1d"]) - 1)
        .groupby("trade_date")["simple"]
        .mean()
        .pipe(np.log1p)
        .rename("mkt_ret_1d")
        .to_frame()
    )
    market["mkt_ret_5d"] = market["mkt_ret_1d"].rolling(5).sum()
    return df.merge(market, left_on="trade_date", right_index=True, how="left")


def features(df: pd.DataFrame) -> pd.DataFrame:
    """The mart's columns from ``intermediates``' frame: the work the polars model does."""
    g = df.groupby("symbol", sort=False)

    # joined
    df["dollar_volume"] = df["close"] * df["volume"]
    df["illiquidity"] = df["ret_1d"].abs() / df["dollar_volume"].replace(0, np.nan) * 1e6
    df["gain"] = df["price_change"].clip(lower=0)
    df["loss"] = (-df["price_change"]).clip(lower=0)
    df["gk_term"] = 0.5 * df["log_range"] ** 2 - (2 * LN2 - 1) * df["log_body"] ** 2
    df["log_range_sq"] = df["log_range"] ** 2

    out = df[["symbol", "trade_date", "close", "ret_1d"]].copy()
    close = df["close"]
    lag5, lag20, lag60 = (g["close"].shift(n) for n in (5, 20, 60))
    out["ret_5d"] = np.log(close / lag5)
    out["ret_20d"] = np.log(close / lag20)
    out["ret_60d"] = np.log(close / lag60)
    out["rv_5d"] = _rolling(g, "ret_1d", 5, "std")
    out["rv_20d"] = _rolling(g, "ret_1d", 20, "std")
    out["rv_60d"] = _rolling(g, "ret_1d", 60, "std")
    out["parkinson_20d"] = np.sqrt(_rolling(g, "log_range_sq", 20, "mean") / (4 * LN2))
    out["garman_klass_20d"] = np.sqrt(_rolling(g, "gk_term", 20, "mean").clip(lower=0))
    out["momentum_60_5"] = np.log(lag5 / lag60)
    out["reversal_5d"] = -(out["ret_5d"] - df["mkt_ret_5d"])
    avg_gain = _rolling(g, "gain", 14, "mean")
    avg_loss = _rolling(g, "loss", 14, "mean")
    out["macd"] = (_rolling(g, "close", 12, "mean") - _rolling(g, "close", 26, "mean")) / close
    out["price_z_20d"] = (close - _rolling(g, "close", 20, "mean")) / _rolling(g, "close", 20, "std").replace(0, np.nan)
    out["volume_z_20d"] = (df["volume"] - _rolling(g, "volume", 20, "mean")) / _rolling(g, "volume", 20, "std").replace(
        0, np.nan
    )
    out["dollar_volume_20d"] = _rolling(g, "dollar_volume", 20, "mean")
    out["amihud_20d"] = _rolling(g, "illiquidity", 20, "mean")
    out["quoted_spread_20d"] = _rolling(g, "quoted_spread", 20, "mean")
    out["cs_spread_20d"] = _rolling(g, "cs_spread", 20, "mean")
    # beta and correlation with the market: the usual per-symbol apply
    pairs = df[["symbol", "ret_1d", "mkt_ret_1d"]]
    by_symbol = pairs.groupby("symbol", sort=False)[["ret_1d", "mkt_ret_1d"]]
    out["beta_60d"] = by_symbol.apply(
        lambda d: d["ret_1d"].rolling(60).cov(d["mkt_ret_1d"]) / d["mkt_ret_1d"].rolling(60).var()
    ).reset_index(level=0, drop=True)
    out["corr_60d"] = by_symbol.apply(lambda d: d["ret_1d"].rolling(60).corr(d["mkt_ret_1d"])).reset_index(
        level=0, drop=True
    )
    out["drawdown_60d"] = close / _rolling(g, "close", 60, "max") - 1

    # derived
    out["rsi_14"] = (100 - 100 / (1 + avg_gain / avg_loss)).mask(avg_loss == 0, 100.0)
    out["macd_signal_9"] = out.groupby("symbol", sort=False)["macd"].rolling(9).mean().reset_index(level=0, drop=True)
    out["spread_est"] = out["quoted_spread_20d"].fillna(out["cs_spread_20d"])

    # cross-sectional percent ranks among the symbols with a value that day
    by_day = out.groupby("trade_date", sort=False)
    for column in RANKED:
        rank = by_day[column].rank(method="min")
        n = by_day[column].transform("count")
        out[f"rank_{column}"] = ((rank - 1) / (n - 1)).mask((n == 1) & out[column].notna(), 0.0)
    return out[list(FEATURE_COLUMNS)]
