"""Risk limits and trade decisions through Dagster on the bundled real cross-section (524 stocks, 2009-10)."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest

from assets.defs.decisions.assets import trade_decisions
from assets.defs.risk.assets import risk_limits
from mem_pipeline.core.orders import ORDER_SCHEMA
from mem_pipeline.decisions.store import DecisionStore
from tests.pipeline.conftest import BUNDLED_YEAR, copy_of, make_resources
from tests.pipeline.helpers import assert_orders_unchanged, check_results

START, DAY = BUNDLED_YEAR


@pytest.fixture(scope="module")
def fitted(bundled_year, tmp_path_factory):
    data_dir = copy_of(bundled_year, tmp_path_factory, "decisions")
    return data_dir, make_resources(data_dir)


def _decide(resources, day: dt.date = DAY) -> dg.ExecuteInProcessResult:
    return dg.materialize([risk_limits, trade_decisions], resources=resources, partition_key=day.isoformat())


def _version(result: dg.ExecuteInProcessResult) -> str:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["trade_decisions"]]
    materialization = event.event_specific_data.materialization
    assert materialization.tags["dagster/data_version"] == materialization.metadata["decision_version"].value
    return materialization.metadata["decision_version"].value


def test_a_decision_is_checked_stored_and_versioned_by_its_inputs(fitted) -> None:
    data_dir, resources = fitted
    first = _decide(resources)
    assert first.success
    checks = check_results(first)
    assert set(checks) == {
        "limits_finite_and_positive",
        "orders_within_limits",
        "cvar_within_budget",
        "finite_sizes",
        "no_new_risk_when_killed",
    }
    assert all(c.passed for c in checks.values())
    version = _version(first)
    store = DecisionStore(data_dir / "decisions")
    assert store.versions(DAY) == [version]
    orders = store.read_orders(version)
    assert orders.schema == pl.Schema(ORDER_SCHEMA)
    assert (orders["decision_version"] == version).all() and (orders["decision_date"] == DAY).all()
    assert_orders_unchanged(orders, "bundled_2010-08-20")
    limits = pl.read_parquet(data_dir / "risk" / DAY.isoformat() / "symbols.parquet")
    assert set(orders["symbol"]) <= set(limits["symbol"])
    # The same inputs give the same version and add no file.
    again = _decide(resources)
    assert _version(again) == version
    assert store.versions(DAY) == [version]


def test_no_decision_with_a_model_fitted_on_later_data(fitted) -> None:
    _, resources = fitted
    result = dg.materialize([risk_limits], resources=resources, partition_key="2010-06-30", raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "fitted on data up to 2010-06-30" in str(failure.event_specific_data.error.cause.message)


def test_no_decision_on_a_day_without_features(fitted) -> None:
    """A day the warehouse has no features for (its ingest or dbt build did not land): deciding on nothing
    would close every position, so the limits refuse it, naming what to run."""
    data_dir, resources = fitted
    day = BUNDLED_YEAR[1] + dt.timedelta(days=3)  # the Monday after the bundled year: never ingested here
    result = dg.materialize([risk_limits], resources=resources, partition_key=day.isoformat(), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert f"no features for {day}" in str(failure.event_specific_data.error.cause.message)
    assert not (data_dir / "risk" / day.isoformat()).exists()


def test_trade_decisions_sizes_against_the_stored_assessment(fitted) -> None:
    data_dir, resources = fitted
    assert _decide(resources).success
    stored = data_dir / "risk" / DAY.isoformat() / "limits.json"
    original = stored.read_text()
    limits = json.loads(original)
    assert not limits["kill_switch"]
    try:
        # the drawdown kill switch, as if risk_limits had found it on: a flat book may then open nothing
        stored.write_text(json.dumps({**limits, "kill_switch": True}))
        alone = dg.materialize([trade_decisions], resources=resources, partition_key=DAY.isoformat())
        orders = DecisionStore(data_dir / "decisions").read_orders(_version(alone))
        assert orders.height == 0
    finally:
        stored.write_text(original)
