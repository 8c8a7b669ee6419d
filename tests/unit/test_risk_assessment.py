"""The day's risk assessment: stored and read back whole, the scenario window it reads, and the inputs it is
assessed on stored and read back unchanged."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mem_pipeline.decisions.decide import assess_day
from mem_pipeline.decisions.inputs import DecisionInputs
from mem_pipeline.decisions.sample_inputs import DECISION_DATE, make_inputs, sample_inputs
from mem_pipeline.risk.assessment import RiskAssessment
from mem_pipeline.risk.config import RiskConfig, RiskError
from mem_pipeline.risk.scenarios import build_scenarios, scenario_window

CONFIG = RiskConfig(lookback_days=40, min_history=20)


def _inputs(**kw) -> DecisionInputs:
    return sample_inputs(DECISION_DATE, **make_inputs(n_symbols=12, seed=31, **kw))


def _same_arrays(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def test_the_scenario_window_changes_no_scenario() -> None:
    inputs = _inputs()
    # a symbol whose history stops long before the window, with a forecast as stale
    stale = pl.DataFrame({"symbol": ["OLD"], "trade_date": [inputs.returns["trade_date"].min()], "ret_1d": [0.01]})
    returns = pl.concat([inputs.returns, stale])
    vol = pl.concat([inputs.vol_forecasts, stale.rename({"ret_1d": "vol_forecast"})])
    universe = [*inputs.universe, "OLD"]
    cut_returns, cut_vol = scenario_window(returns, vol, CONFIG)
    assert cut_returns.height < returns.height and cut_vol is not None and cut_vol.height < vol.height
    full = build_scenarios(returns, vol, universe, DECISION_DATE, CONFIG)
    cut = build_scenarios(cut_returns, cut_vol, universe, DECISION_DATE, CONFIG)
    assert full.dates == cut.dates
    for name in ("log_returns", "simple_returns", "next_vol", "n_valid", "filtered"):
        assert _same_arrays(getattr(full, name), getattr(cut, name)), name


def test_a_stored_assessment_reads_back_whole(tmp_path: Path) -> None:
    inputs = _inputs(held_share=0.4)
    assessment = assess_day(inputs, CONFIG)
    assessment.save(tmp_path)
    back = RiskAssessment.load(tmp_path, inputs.returns, inputs.vol_forecasts, CONFIG)
    assert back.limits == assessment.limits and back.drawdown == assessment.drawdown
    assert back.regime_probabilities == assessment.regime_probabilities
    assert back.regime_multiplier == assessment.regime_multiplier
    assert back.universe == assessment.universe and back.symbols.equals(assessment.symbols)
    assert _same_arrays(back.scenarios.simple_returns, assessment.scenarios.simple_returns)
    assert _same_arrays(back.risk_model.covariance, assessment.risk_model.covariance)


def test_the_stored_limits_are_what_is_read(tmp_path: Path) -> None:
    inputs = _inputs()
    assess_day(inputs, CONFIG).save(tmp_path)
    stored = json.loads((tmp_path / "limits.json").read_text())
    stored["kill_switch"] = True
    (tmp_path / "limits.json").write_text(json.dumps(stored))
    assert RiskAssessment.load(tmp_path, inputs.returns, inputs.vol_forecasts, CONFIG).limits.kill_switch


def test_an_assessment_refuses_inputs_other_than_its_own(tmp_path: Path) -> None:
    inputs = _inputs()
    assess_day(inputs, CONFIG).save(tmp_path)
    shocked = inputs.returns.with_columns(pl.col("ret_1d") * 2)
    with pytest.raises(RiskError, match="differs from the inputs"):
        RiskAssessment.load(tmp_path, shocked, inputs.vol_forecasts, CONFIG)
    with pytest.raises(RiskError, match="no stored risk assessment"):
        RiskAssessment.load(tmp_path / "missing", inputs.returns, inputs.vol_forecasts, CONFIG)


def test_stored_inputs_read_back_with_the_same_digests(tmp_path: Path) -> None:
    inputs = dataclasses.replace(_inputs(held_share=0.5), lot_sizes={"S0001": 5.0}, skipped=("S0099",))
    inputs.save(tmp_path)
    back = DecisionInputs.load(tmp_path)
    assert back.digests() == inputs.digests()
    assert (back.lot_sizes, back.skipped, back.model_hashes) == (inputs.lot_sizes, inputs.skipped, inputs.model_hashes)
    assert back.universe == inputs.universe and back.held == inputs.held
    # an edited file is caught by its digest
    back.features.with_columns(pl.col("close") * 1.01).write_parquet(tmp_path / "features.parquet")
    with pytest.raises(Exception, match="do not match their digests"):
        DecisionInputs.load(tmp_path)
