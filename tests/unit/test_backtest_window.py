"""The backtest's default window: the span where at least half of the universe trades, after the warm-up."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import polars as pl
import pytest

from mem_pipeline.backtest.run import BacktestConfig, replay_window
from mem_pipeline.backtest.simulator import BacktestError

DAY0 = dt.date(2020, 1, 1)


def _history(spans: dict[str, range]) -> SimpleNamespace:
    """A history whose features have one row per symbol per day index in its span (day i = DAY0 + i days)."""
    rows = [(s, DAY0 + dt.timedelta(days=i)) for s, span in spans.items() for i in span]
    return SimpleNamespace(features=pl.DataFrame(rows, schema=["symbol", "trade_date"], orient="row"))


def test_the_default_window_is_where_half_the_universe_trades() -> None:
    """Two long series (days 0..299) around ten symbols that trade days 100..199 only, as the bundled sample's
    two indices around its stock year: 12 symbols, so a day is wide with >= 6; warm-up 20 days."""
    spans = {"IDX1": range(300), "IDX2": range(300), **{f"S{i}": range(100, 200) for i in range(10)}}
    start, end = replay_window(_history(spans), BacktestConfig(warmup_days=20))
    assert (start, end) == (DAY0 + dt.timedelta(days=120), DAY0 + dt.timedelta(days=199))


def test_a_universe_trading_throughout_keeps_the_whole_span() -> None:
    spans = {f"S{i}": range(50) for i in range(4)} | {"LATE": range(30, 50)}
    start, end = replay_window(_history(spans), BacktestConfig(warmup_days=20))
    assert (start, end) == (DAY0 + dt.timedelta(days=20), DAY0 + dt.timedelta(days=49))


def test_explicit_bounds_win_and_a_short_span_is_refused() -> None:
    spans = {"A": range(300), **{f"S{i}": range(100, 130) for i in range(3)}}
    chosen = BacktestConfig(start=DAY0 + dt.timedelta(days=5), end=DAY0 + dt.timedelta(days=250), warmup_days=20)
    assert replay_window(_history(spans), chosen) == (chosen.start, chosen.end)
    with pytest.raises(BacktestError, match="leave no day after backtest.run.warmup_days=200"):
        replay_window(_history(spans), BacktestConfig(warmup_days=200))


def test_a_universe_never_half_present_falls_back_to_every_day() -> None:
    """Three symbols one after another (days 0-99, 100-199, 200-299): no day has half of them, so the window is
    every day's, after the warm-up; explicit bounds are taken as given."""
    spans = {"A": range(100), "B": range(100, 200), "C": range(200, 300)}
    assert replay_window(_history(spans), BacktestConfig(warmup_days=20)) == (
        DAY0 + dt.timedelta(days=20),
        DAY0 + dt.timedelta(days=299),
    )
    chosen = BacktestConfig(start=DAY0 + dt.timedelta(days=150), end=DAY0 + dt.timedelta(days=160))
    assert replay_window(_history(spans), chosen) == (chosen.start, chosen.end)
