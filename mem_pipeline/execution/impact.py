"""The cost law every simulated fill uses — the paper broker's and the backtest's (one implementation).

``cost_bps = spread/2 + eta·sigma·(q/ADV)^delta·1e4 + noise_scale·sigma·sqrt(q/ADV)·1e4·z``, the synthetic
market's impact model: ``sigma`` (std of daily log returns) and ``ADV`` (mean volume) over the ``adv_window``
bars before the fill (point in time), ``z`` standard normal. A buy fills at ``open·(1 + cost/1e4)``, a sell at
``open·(1 − cost/1e4)``. Works on scalars and numpy arrays alike.
"""

from __future__ import annotations

import hashlib
from typing import TypeVar

import numpy as np
import polars as pl

Num = TypeVar("Num", float, np.ndarray)


def impact_cost_bps(
    size_over_adv: Num, sigma: Num, spread_bps: Num, z: Num, *, eta: float, delta: float, noise_scale: float
) -> Num:
    """The cost in basis points of trading ``size_over_adv`` (q/ADV ≥ 0) at volatility ``sigma``."""
    return (
        spread_bps / 2
        + eta * sigma * size_over_adv**delta * 1e4
        + noise_scale * sigma * np.sqrt(size_over_adv) * 1e4 * z
    )


def fill_price(open_price: Num, side_sign: Num, cost_bps: Num) -> Num:
    """The fill price of a buy (``side_sign`` +1) or sell (−1) at the bar's open moved by ``cost_bps``."""
    return open_price * (1 + side_sign * cost_bps / 1e4)


def fill_noise(seed: int, key: str, date: object) -> float:
    """The standard normal ``z`` of one fill, fixed by (seed, key, date): the same orders and bars give the
    same fills, in any process."""
    digest = hashlib.sha256(f"{seed}|{key}|{date}".encode()).digest()[:8]
    return float(np.random.default_rng(int.from_bytes(digest, "big")).standard_normal())


def with_fill_stats(
    bars: pl.DataFrame, *, adv_window: int, default_sigma: float, default_spread_bps: float
) -> pl.DataFrame:
    """Add point-in-time ``_adv`` (mean volume), ``_sigma`` (std of daily log returns) over the previous
    ``adv_window`` bars, and ``_spread_bps`` (bid/ask, else a ``spread_bps`` column, else the default) to
    ``bars`` sorted by symbol and date."""
    w = adv_window
    ret = (pl.col("close") / pl.col("close").shift(1)).log().over("symbol")
    frame = bars.with_columns(_ret=ret).with_columns(
        _adv=pl.col("volume").shift(1).rolling_mean(w, min_samples=1).over("symbol"),
        _sigma=pl.col("_ret").shift(1).rolling_std(w, min_samples=2).over("symbol"),
    )
    if {"bid", "ask"} <= set(bars.columns):
        quoted = (pl.col("ask") - pl.col("bid")) / ((pl.col("ask") + pl.col("bid")) / 2) * 1e4
    elif "spread_bps" in bars.columns:
        quoted = pl.col("spread_bps")
    else:
        quoted = pl.lit(None, dtype=pl.Float64)
    return frame.with_columns(
        _adv=pl.coalesce(pl.col("_adv"), pl.col("volume")),
        _sigma=pl.when(pl.col("_sigma") > 0).then(pl.col("_sigma")).otherwise(default_sigma),
        _spread_bps=pl.when(quoted > 0).then(quoted).otherwise(default_spread_bps).cast(pl.Float64),
    )
