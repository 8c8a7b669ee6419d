"""The dbt features through Dagster: partition window -> dbt vars, idempotency, incremental == full refresh.

The intermediates and the mart are incremental (one daily asset); a re-materialized older day rebuilds
every later row that reads it, so the warehouse always equals a full refresh of the lake.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.defs.features.dbt import mem_dbt_history
from assets.defs.ingest.assets import raw_bars
from mem_pipeline.core.paths import Paths
from mem_pipeline.features.dbt_cli import read_table
from tests.pipeline.conftest import make_resources
from tests.pipeline.helpers import assert_same_values, build_features, check_results, features, ingest

SPRING = (dt.date(2010, 3, 1), dt.date(2010, 6, 30))
INCREMENTAL = ("int_bars__returns", "fct_features_daily")


def _market(data_dir) -> pl.DataFrame:
    with duckdb.connect(str(data_dir / "warehouse" / "mem.duckdb"), read_only=True) as con:
        return con.sql("select * from int_market__daily order by trade_date").pl()


def _snapshot(data_dir) -> dict[str, pl.DataFrame]:
    return {table: read_table(data_dir, table) for table in INCREMENTAL} | {"int_market__daily": _market(data_dir)}


def _assert_same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> None:
    for table in INCREMENTAL:
        assert_same_values(a[table], b[table])
    market_a, market_b = a["int_market__daily"], b["int_market__daily"]
    assert market_a["trade_date"].equals(market_b["trade_date"])
    for column in ("mkt_ret_1d", "mkt_ret_5d"):
        gap = (market_a[column] - market_b[column]).abs().max()
        assert market_a[column].is_null().equals(market_b[column].is_null()) and (gap is None or gap <= 1e-15)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """Four months of the bundled cross-section ingested, views built, the daily models backfilled in one run."""
    data_dir = tmp_path_factory.mktemp("features") / "data"
    resources = make_resources(data_dir)
    assert dg.materialize([raw_bars], resources=resources, **ingest(*SPRING)).success
    return data_dir, resources, build_features(resources, *SPRING)


def test_backfill_builds_one_row_per_bar_with_dbt_checks(warehouse) -> None:
    data_dir, _, built = warehouse
    bars = read_table(data_dir, "stg_market__bars").select("symbol", "trade_date")
    for table in INCREMENTAL:
        assert read_table(data_dir, table).select("symbol", "trade_date").equals(bars), table
    assert _market(data_dir)["trade_date"].equals(bars["trade_date"].unique().sort().slice(1))  # day 1: no return
    # a spring of daily rows is one yearly partition: one event per model, not one per day
    events = built.get_asset_materialization_events()
    assert {m.partition for m in events} == {"2010"}
    assert sorted(m.asset_key.to_user_string() for m in events) == sorted(
        {*INCREMENTAL, "int_market__daily", "stg_market__bars"}
    )
    checks = built.get_asset_check_evaluations()
    assert {c.asset_key.to_user_string() for c in checks} >= {"int_bars__returns", "fct_features_daily"}
    assert checks and all(c.passed for c in checks)


def test_a_partition_rematerialized_is_idempotent_and_equals_a_full_refresh(warehouse) -> None:
    data_dir, resources, _ = warehouse
    backfilled = _snapshot(data_dir)
    assert dg.materialize([mem_dbt_history], resources=resources, **features(dt.date(2010, 6, 30))).success
    once = _snapshot(data_dir)
    assert dg.materialize([mem_dbt_history], resources=resources, **features(dt.date(2010, 6, 30))).success
    for table, frame in _snapshot(data_dir).items():
        assert frame.equals(once[table]), table  # the same run twice: the same bits
    _assert_same(once, backfilled)  # a one-day incremental equals the backfill
    assert dg.materialize(
        [mem_dbt_history], resources=resources, **features(dt.date(2010, 6, 30), full_refresh=True)
    ).success
    _assert_same(_snapshot(data_dir), backfilled)


def test_an_older_day_re_ingested_rebuilds_every_later_row(tmp_path) -> None:
    """A corrected close and a symbol dropped on an old day: materializing that one partition leaves the
    warehouse equal to a full refresh (later lags and windows read the corrected bar; no stale row)."""
    data_dir = tmp_path / "data"
    resources = make_resources(data_dir)
    assert dg.materialize([raw_bars], resources=resources, **ingest(*SPRING)).success
    build_features(resources, *SPRING)
    day = dt.date(2010, 5, 3)
    part = Paths(data_dir).bars("sample") / f"date={day.isoformat()}" / "part.parquet"
    bars = pl.read_parquet(part)
    moved, dropped = bars["symbol"].sort()[0], bars["symbol"].sort()[1]
    scale = pl.when(pl.col("symbol") == moved).then(1.05).otherwise(1.0)
    corrected = bars.filter(pl.col("symbol") != dropped).with_columns(
        *(pl.col(c) * scale for c in ("open", "high", "low", "close"))
    )
    corrected.write_parquet(part)
    before = read_table(data_dir, "fct_features_daily")

    assert dg.materialize([mem_dbt_history], resources=resources, **features(day)).success
    incremental = _snapshot(data_dir)
    rebuilt = incremental["fct_features_daily"]
    assert rebuilt.filter((pl.col("symbol") == dropped) & (pl.col("trade_date") == day)).is_empty()
    later = (pl.col("symbol") == moved) & (pl.col("trade_date") > day)
    changed = rebuilt.filter(later)["rv_20d"] != before.filter(later)["rv_20d"]
    assert changed.head(20).all()  # the 20 windows after the corrected day hold its returns
    assert dg.materialize([mem_dbt_history], resources=resources, **features(day, full_refresh=True)).success
    _assert_same(incremental, _snapshot(data_dir))


def test_a_day_skipped_by_earlier_runs_is_filled_in(tmp_path) -> None:
    """Built through June 24, then June 30 alone: the lake's June 25-29 are built too (never a gap that the
    next day's lags would step over), and the warehouse equals a full refresh."""
    data_dir = tmp_path / "data"
    resources = make_resources(data_dir)
    assert dg.materialize([raw_bars], resources=resources, **ingest(*SPRING)).success
    build_features(resources, SPRING[0], dt.date(2010, 6, 24))
    assert dg.materialize([mem_dbt_history], resources=resources, **features(dt.date(2010, 6, 30))).success
    filled = _snapshot(data_dir)
    days = filled["fct_features_daily"]["trade_date"].unique().sort()
    assert days.filter(days > dt.date(2010, 6, 24)).to_list() == [dt.date(2010, 6, d) for d in (25, 28, 29, 30)]
    assert dg.materialize(
        [mem_dbt_history], resources=resources, **features(dt.date(2010, 6, 30), full_refresh=True)
    ).success
    _assert_same(filled, _snapshot(data_dir))


def test_the_window_limits_what_is_written(resources, data_dir) -> None:
    assert dg.materialize([raw_bars], resources=resources, **ingest(*SPRING)).success
    assert dg.materialize(
        [mem_dbt_history], resources=resources, **features(dt.date(2010, 6, 1), dt.date(2010, 6, 4))
    ).success
    written = read_table(data_dir, "fct_features_daily")
    assert written["trade_date"].unique().sort().to_list() == [dt.date(2010, 6, d) for d in (1, 2, 3, 4)]
    # Windows still see the history before the partition window: 20-day volatility is warm on June 1.
    assert written.filter(pl.col("symbol") == "AAPL")["rv_20d"].null_count() == 0
    # The intermediate holds that history (built from the whole lake on its first run), never a later day.
    assert read_table(data_dir, "int_bars__returns")["trade_date"].max() == dt.date(2010, 6, 4)


def test_a_run_leaves_no_window_behind_for_later_dbt_commands(warehouse) -> None:
    """The run's days reach dbt through the environment; after the run, a dbt command of the same process
    (a test fixture, a notebook) must see no window."""
    import os

    from assets.defs.features.dbt import WINDOW_ENV

    _, resources, _ = warehouse
    assert dg.materialize([mem_dbt_history], resources=resources, **features(dt.date(2010, 6, 30))).success
    assert not any(os.environ.get(name) for name in WINDOW_ENV)


def test_a_failing_dbt_test_fails_its_check_and_the_step_and_stops_the_models_over_it(tmp_path) -> None:
    """A lake file written around the ingest gate (one bar's high below its close): dbt's test on the staging
    view fails, so do its asset check and the step (with dbt's message), and the daily models over it are not
    built (dbt's build skips them)."""
    data_dir = tmp_path / "data"
    resources = make_resources(data_dir)
    day = dt.date(2010, 3, 1)
    assert dg.materialize([raw_bars], resources=resources, **ingest(day)).success
    [part] = (Paths(data=data_dir).bars("sample") / f"date={day}").glob("*.parquet")
    bars = pl.read_parquet(part)
    bars.with_columns(
        high=pl.when(pl.int_range(pl.len()) == 0).then(pl.col("close") * 0.5).otherwise("high")
    ).write_parquet(part)

    result = dg.materialize([mem_dbt_history], resources=resources, raise_on_error=False, **features(day))
    assert not result.success
    checks = check_results(result)
    assert checks["assert_stg_bars_ohlc_consistent"].passed is False
    assert all(e.passed for name, e in checks.items() if name != "assert_stg_bars_ohlc_consistent")
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "assert_stg_bars_ohlc_consistent" in failure.step_failure_data.error.message
    built = {m.asset_key.path[-1] for m in result.get_asset_materialization_events() if m.asset_key}
    assert built == {"stg_market__bars"}


def test_a_dbt_error_fails_the_step_with_dbts_message(tmp_path) -> None:
    """The labels built over a warehouse that has no history yet: dbt's model errors (its relation is missing)
    and the step fails naming it, instead of succeeding with nothing materialized."""
    from assets.defs.features.dbt import mem_dbt_tables

    result = dg.materialize([mem_dbt_tables], resources=make_resources(tmp_path / "data"), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "fct_labels_daily" in failure.step_failure_data.error.message
    assert not result.get_asset_materialization_events()


@pytest.mark.parametrize("unit_tests", [True, False])
def test_unit_tests_run_unless_the_run_skips_them(warehouse, unit_tests: bool) -> None:
    import json

    from assets.defs.features.dbt import DBT_PROJECT

    _, resources, _ = warehouse
    day = SPRING[1]
    config = features(day)
    config["run_config"]["ops"]["mem_dbt_history"]["config"]["unit_tests"] = unit_tests
    result = dg.materialize([mem_dbt_history], resources=resources, **config)
    [target] = (DBT_PROJECT.project_dir / "target").glob(f"mem_dbt_history-{result.run_id[:7]}-*")
    ran = [r["unique_id"] for r in json.loads((target / "run_results.json").read_text())["results"]]
    assert any(r.startswith("test.") for r in ran)
    assert any(r.startswith("unit_test.") for r in ran) is unit_tests
