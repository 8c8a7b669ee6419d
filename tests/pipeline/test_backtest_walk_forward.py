"""The walk-forward replay of the decision kernel on a small synthetic market built through dbt: refits on the
cadence, the simulator's books, and no lookahead (a replay that could only read data up to a day decides every
day up to it exactly as the full replay did)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from mem_pipeline.backtest.walk_forward import History, WalkForwardConfig, refit_days, replay
from mem_pipeline.decisions.sample_inputs import sqrt_cost_model
from tests.pipeline.backtest_market import synthetic_history

START, CUT, END = dt.date(2016, 11, 1), dt.date(2016, 11, 30), dt.date(2016, 12, 30)
MONTHLY = WalkForwardConfig(refit="monthly")


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> History:
    return synthetic_history(tmp_path_factory.mktemp("walk_forward") / "data", END)[0]


@pytest.fixture(scope="module")
def full(history: History):
    return replay(history, START, END, sqrt_cost_model, walk=MONTHLY)


def test_refit_days_are_the_first_trading_day_of_each_period() -> None:
    days = [dt.date(2016, 3, 30), dt.date(2016, 3, 31), dt.date(2016, 4, 1), dt.date(2016, 7, 1), dt.date(2016, 7, 4)]
    assert refit_days(days, "monthly") == {dt.date(2016, 3, 30), dt.date(2016, 4, 1), dt.date(2016, 7, 1)}
    assert refit_days(days, "quarterly") == {dt.date(2016, 3, 30), dt.date(2016, 4, 1), dt.date(2016, 7, 1)}
    assert refit_days(days[:2] + days[3:], "quarterly") == {dt.date(2016, 3, 30), dt.date(2016, 7, 1)}


def test_the_replay_decides_every_day_refits_monthly_and_books_its_trades(full) -> None:
    assert full.refits == [dt.date(2016, 11, 1), dt.date(2016, 12, 1)]
    assert full.days[0] == START and full.days[-1] == END and len(full.days) > 40
    traded = sum(o.height for o in full.orders.values())
    assert traded > 0
    r = full.result
    assert np.isfinite(r.equity).all() and (r.equity > 0).all()
    # The books add up: positions are the sum of the fills, cash the start minus what they paid and cost.
    fills = pl.DataFrame(r.fills)
    by_symbol = dict(fills.group_by("symbol").agg(pl.col("quantity").sum()).iter_rows())
    final = dict(zip(r.symbols, r.positions[-1], strict=True))
    assert {s: final[s] for s in by_symbol} == pytest.approx(by_symbol)
    paid = float((fills["quantity"] * fills["price"]).sum() + fills["fee"].sum())
    assert r.cash[-1] == pytest.approx(10_000.0 - paid)


def test_no_lookahead_a_replay_cut_at_a_day_decides_the_same_up_to_it(history: History, full) -> None:
    cut = replay(history.until(CUT), START, CUT, sqrt_cost_model, walk=MONTHLY)
    assert cut.days == [d for d in full.days if d <= CUT]
    for day in cut.days:
        assert cut.orders[day].drop("decision_version").equals(full.orders[day].drop("decision_version")), day
    assert cut.equity().equals(full.equity().filter(pl.col("trade_date") <= CUT))
