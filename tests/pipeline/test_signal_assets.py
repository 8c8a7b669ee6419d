"""The signal model and the decision memory through Dagster, scored on the synthetic market.

The default synthetic market carries a known signal (each symbol's idiosyncratic return reverts 0.2 of
yesterday's shock, ``sources.synthetic.alpha.reversal`` in params.yaml): the published probability must be
calibrated (ECE < 0.03) and beat the base rate out of sample, and a refit as of a date must not read past it.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest

from assets.defs.models.signal import decision_memory, signal_model
from assets.resources import LakeResource
from mem_pipeline.features.dbt_cli import dbt
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, generate_market
from mem_pipeline.memory.decision_memory import DecisionMemory
from tests.dbt.harness import write_lake
from tests.pipeline.helpers import check_results

AS_OF = dt.date(2017, 6, 30)


def _synthetic_lake(tmp_path_factory, end: dt.date | None = None):
    config = SyntheticConfig.from_params_file()
    assert config.alpha.reversal > 0, "the default synthetic market should carry a known signal"
    data_dir = tmp_path_factory.mktemp("signal") / "data"
    bars = generate_market(config).bars(end=end)
    write_lake(data_dir, "synthetic", bars)
    dbt(data_dir, "run", dbt_vars={"source": "synthetic"})
    return data_dir, {"lake": LakeResource(data_dir=str(data_dir))}


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return _synthetic_lake(tmp_path_factory)


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
    raise AssertionError(f"{asset} was not materialized")


def _current(data_dir, name: str) -> str:
    return json.loads((data_dir / "models" / name / "current.json").read_text())["artifact"]


def test_signal_is_calibrated_and_beats_the_base_rate_then_memory_weights_the_refit(lake) -> None:
    data_dir, resources = lake
    first = dg.materialize([signal_model, decision_memory], resources=resources)
    assert first.success
    checks = check_results(first)
    assert checks["calibrated"].passed and checks["calibrated"].metadata["actual"].value < 0.03
    beats = checks["beats_base_rate"].metadata
    assert checks["beats_base_rate"].passed, {k: v.value for k, v in beats.items()}
    assert beats["actual"].value < beats["threshold"].value
    assert checks["probabilities_valid"].passed and checks["outcomes_after_decisions"].passed
    assert _metadata(first, "signal_model")["memory"] == {"used": False}

    # The memory journaled every out-of-sample call once, with its outcome known after the call.
    journal = DecisionMemory.load(data_dir / "memory" / "journal.parquet").journal
    assert journal.height == _metadata(first, "decision_memory")["rows"] > 0
    assert journal["decision_id"].is_unique().all()
    assert (journal["known_date"] > journal["trade_date"]).all()

    # The next refit is weighted by the memory's replay priorities; re-journaling adds nothing.
    with_memory = {"ops": {"signal_model": {"config": {"use_memory": True}}}}
    second = dg.materialize([signal_model, decision_memory], resources=resources, run_config=with_memory)
    assert second.success
    memory = _metadata(second, "signal_model")["memory"]
    assert memory["used"] and memory["rows_weighted"] > 0 and memory["weight_max"] > 1.0
    assert _metadata(second, "decision_memory")["new_rows"] == 0
    assert all(c.passed for c in second.get_asset_check_evaluations() if c.check_name != "beats_base_rate")


def test_a_signal_refit_as_of_a_date_reads_nothing_after_it(lake, tmp_path_factory) -> None:
    data_dir, resources = lake
    fresh_dir, fresh = _synthetic_lake(tmp_path_factory)  # no memory yet: the same inputs as the truncated lake
    config = {"ops": {"signal_model": {"config": {"as_of": AS_OF.isoformat()}}}}
    assert dg.materialize([signal_model], resources=fresh, run_config=config).success
    truncated_dir, truncated = _synthetic_lake(tmp_path_factory, end=AS_OF)
    assert dg.materialize([signal_model], resources=truncated).success
    assert _current(fresh_dir, "signal") == _current(truncated_dir, "signal")
    record = json.loads((fresh_dir / "models" / "signal" / "current.json").read_text())
    assert record["as_of"] <= AS_OF.isoformat()
    oos = pl.read_parquet(fresh_dir / "models" / "signal" / record["artifact"] / "oos.parquet")
    assert oos["known_date"].max() <= AS_OF
