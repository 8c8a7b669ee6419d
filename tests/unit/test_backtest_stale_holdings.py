"""A replay day where a held symbol has no complete features row (no bar, a quarantined bar): the replay prices
it with its last complete row of an earlier day, gives it no signal, and the kernel closes it; without that
row the kernel refuses the day."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from mem_pipeline.backtest.walk_forward import _price_stale_holdings
from mem_pipeline.decisions.decide import decide_day
from mem_pipeline.decisions.sample_inputs import DECISION_DATE, make_inputs, sample_inputs, sqrt_cost_model
from mem_pipeline.decisions.types import DecisionError


def test_a_held_symbol_without_todays_features_is_priced_from_its_last_complete_row_and_closed() -> None:
    frames = make_inputs(n_symbols=6, held_share=1.0, seed=2)
    held = frames["positions"]["symbol"][0]
    today = frames["features"].filter(pl.col("symbol") == held)
    frames["features"] = frames["features"].filter(pl.col("symbol") != held)
    frames["signals"] = frames["signals"].filter(pl.col("symbol") != held)
    two_days_ago = today.with_columns(trade_date=pl.lit(DECISION_DATE - dt.timedelta(days=2)), close=pl.lit(50.0))
    yesterday = today.with_columns(trade_date=pl.lit(DECISION_DATE - dt.timedelta(days=1)), rv_20d=pl.lit(None))
    history = pl.concat([two_days_ago, yesterday, frames["features"]], how="vertical_relaxed")
    inputs = sample_inputs(**frames)
    with pytest.raises(DecisionError, match=held):
        decide_day(inputs, sqrt_cost_model)
    priced = _price_stale_holdings(inputs, history, DECISION_DATE)
    row = priced.features.filter(pl.col("symbol") == held)
    assert row["trade_date"].to_list() == [DECISION_DATE - dt.timedelta(days=2)] and row["close"][0] == 50.0
    decision = decide_day(priced, sqrt_cost_model)
    target = decision.targets.filter(pl.col("symbol") == held)
    assert target["target_position"][0] == 0.0 and target["binding_limit"][0] == "no_signal"
    [order] = decision.orders.filter(pl.col("symbol") == held).iter_rows(named=True)
    assert order["reference_price"] == 50.0 and order["target_position"] == 0.0
