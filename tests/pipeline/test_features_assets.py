"""The dbt features through Dagster: partition window -> dbt vars, idempotency, incremental == full refresh."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from assets.defs.features.dbt import mem_dbt_daily, mem_dbt_models
from assets.defs.ingest.assets import raw_bars
from tests.dbt.runner import read_table
from tests.pipeline.conftest import make_resources
from tests.pipeline.helpers import assert_same_values, range_tags

SPRING = (dt.date(2010, 3, 1), dt.date(2010, 6, 30))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """Four months of the bundled cross-section ingested, views built, the mart backfilled in one run."""
    data_dir = tmp_path_factory.mktemp("features") / "data"
    resources = make_resources(data_dir)
    assert dg.materialize([raw_bars], resources=resources, tags=range_tags(*SPRING)).success
    assert dg.materialize([mem_dbt_models], resources=resources).success
    result = dg.materialize([mem_dbt_daily], resources=resources, tags=range_tags(*SPRING))
    assert result.success
    return data_dir, resources, result


def test_backfill_builds_one_row_per_bar_with_dbt_checks(warehouse) -> None:
    data_dir, _, built = warehouse
    features = read_table(data_dir, "fct_features_daily")
    bars = read_table(data_dir, "stg_market__bars")
    assert features.height == bars.height
    assert features.select("symbol", "trade_date").equals(bars.select("symbol", "trade_date"))
    partitions = {m.partition for m in built.get_asset_materialization_events() if m.partition}
    assert len(partitions) == int(pl.date_range(*SPRING, eager=True).dt.weekday().le(5).sum())
    checks = built.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


def test_a_partition_rematerialized_is_idempotent_and_equals_a_full_refresh(warehouse) -> None:
    data_dir, resources, _ = warehouse
    backfilled = read_table(data_dir, "fct_features_daily")
    assert dg.materialize([mem_dbt_daily], resources=resources, partition_key="2010-06-30").success
    once = read_table(data_dir, "fct_features_daily")
    assert dg.materialize([mem_dbt_daily], resources=resources, partition_key="2010-06-30").success
    assert read_table(data_dir, "fct_features_daily").equals(once)  # the same run twice: the same bits
    assert_same_values(once, backfilled)  # a one-day incremental equals the backfill
    refresh = {"ops": {"mem_dbt_daily": {"config": {"full_refresh": True}}}}
    assert dg.materialize([mem_dbt_daily], resources=resources, partition_key="2010-06-30", run_config=refresh).success
    assert_same_values(read_table(data_dir, "fct_features_daily"), backfilled)


def test_the_window_limits_what_is_written(resources, data_dir) -> None:
    assert dg.materialize([raw_bars], resources=resources, tags=range_tags(*SPRING)).success
    assert dg.materialize([mem_dbt_models], resources=resources).success
    assert dg.materialize(
        [mem_dbt_daily], resources=resources, tags=range_tags(dt.date(2010, 6, 1), dt.date(2010, 6, 4))
    ).success
    written = read_table(data_dir, "fct_features_daily")
    assert written["trade_date"].unique().sort().to_list() == [dt.date(2010, 6, d) for d in (1, 2, 3, 4)]
    # Windows still see the history before the partition window: 20-day volatility is warm on June 1.
    assert written.filter(pl.col("symbol") == "AAPL")["rv_20d"].null_count() == 0
