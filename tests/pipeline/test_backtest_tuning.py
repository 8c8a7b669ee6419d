"""Optuna tuning on the small synthetic market: it reads nothing from the backtest's window (the same trials from
a history cut before it), is reproducible, stores every trial, and its best values become MEM's; a tuning that
validated inside the backtest's window is refused; the report deflates by every trial."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from mem_pipeline.backtest.run import BacktestConfig, BacktestParams, law_cost_model
from mem_pipeline.backtest.simulator import BacktestError
from mem_pipeline.backtest.tuning import SPACE, TuningConfig, load_best, tune
from mem_pipeline.backtest.walk_forward import WalkForwardConfig
from tests.pipeline.backtest_market import synthetic_history

TEST_START, END = dt.date(2016, 10, 3), dt.date(2016, 12, 30)
PARAMS = dataclasses.replace(
    BacktestParams(),
    run=BacktestConfig(start=TEST_START),
    walk=WalkForwardConfig("monthly"),
    tuning=TuningConfig(n_trials=3, validation_days=20, seed=1),
)


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    return synthetic_history(tmp_path_factory.mktemp("tuning") / "data", END)[0]


@pytest.fixture(scope="module")
def tuned(history):
    return tune(history, TEST_START, PARAMS, law_cost_model(PARAMS.paper), PARAMS.tuning, "u")


def test_tuning_reads_nothing_from_the_backtest_window_and_is_reproducible(history, tuned) -> None:
    assert tuned.window[1] < TEST_START and tuned.trials.height == 3
    cut = tune(history.until(TEST_START - dt.timedelta(days=1)), TEST_START, PARAMS, law_cost_model(PARAMS.paper),
               PARAMS.tuning, "u")  # fmt: skip
    assert cut.trials.equals(tuned.trials)
    assert cut.best == tuned.best


def test_the_best_trial_becomes_mems_parameters(tuned) -> None:
    best = tuned.trials.sort("value", descending=True).row(0, named=True)
    assert json.loads(best["params"]) == tuned.best and set(tuned.best) == set(SPACE)
    params = PARAMS.with_tuned(tuned.best)
    mem = params.variant("mem")
    assert mem.risk.kelly_fraction == tuned.best["kelly_fraction"]
    assert mem.risk.regime_multipliers == (1.0, tuned.best["regime_volatile"])
    assert mem.decision.max_child_participation == tuned.best["max_child_participation"]
    assert params.models.signal.num_leaves == tuned.best["num_leaves"]
    assert params.tuned == tuned.best


def test_a_tuning_that_validated_inside_the_backtest_window_is_refused(tuned, tmp_path) -> None:
    tuned.save(tmp_path)
    assert load_best(tmp_path, TEST_START, "u") == tuned.best
    with pytest.raises(BacktestError, match="materialize backtest_tuning again"):
        load_best(tmp_path, tuned.window[1], "u")
    with pytest.raises(BacktestError, match="universe"):
        load_best(tmp_path, TEST_START, "another")
    assert load_best(tmp_path / "none", TEST_START, "u") == {}


def test_a_window_too_early_for_a_signal_fit_names_what_to_change(history) -> None:
    """On 10 symbols, a test window 90 days in leaves the tuning's fit (before its 20 validation days) about ten
    days of rows with full 60-day features and known 20-day labels: fewer than a train window needs."""
    early = dt.date(2016, 5, 9)
    with pytest.raises(BacktestError, match=r"no signal model can be fitted on the data up to .*warmup_days"):
        tune(history, early, PARAMS, law_cost_model(PARAMS.paper), PARAMS.tuning, "u")
