"""The market as execution sees it on a day: last closes (the gate's price band and exposure) and, per symbol,
ADV, daily vol and spread (each child slice's expected cost), from the day's features rows."""

from __future__ import annotations

import datetime as dt

import polars as pl

from mem_pipeline.core.paths import Paths
from mem_pipeline.execution.schedules import MarketStats
from mem_pipeline.features.warehouse import read_relation

BPS = 1e4


def market_snapshot(paths: Paths, day: dt.date, symbols: list[str]) -> tuple[dict[str, float], dict[str, MarketStats]]:
    """``(last closes, market statistics)`` of ``symbols`` from ``fct_features_daily`` rows dated ``<= day``."""
    rows = read_relation(
        paths, "fct_features_daily", ["symbol", "trade_date", "close", "dollar_volume_20d", "rv_20d", "spread_est"], day
    ).filter(pl.col("symbol").is_in(symbols))
    latest = rows.sort("trade_date").group_by("symbol").last()
    prices = dict(zip(latest["symbol"], latest["close"], strict=True))
    stats = {
        r["symbol"]: MarketStats(
            adv=r["dollar_volume_20d"] / r["close"], sigma=r["rv_20d"], spread_bps=r["spread_est"] * BPS
        )
        for r in latest.drop_nulls().iter_rows(named=True)
        if r["close"] > 0 and r["dollar_volume_20d"] > 0 and r["rv_20d"] > 0
    }
    return prices, stats
