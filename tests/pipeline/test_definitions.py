"""The definitions load and carry what the UI shows: partitioned assets, blocking checks, jobs."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np

from assets.definitions import defs
from assets.defs.ingest.assets import GATE_CHECK, SCHEMA_CHECK, raw_bars
from mem_pipeline.ingest.quality.rules import RULE_NAMES


def test_assets_and_groups() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_bars", "stg_market__bars"} <= keys
    assert graph.get(dg.AssetKey("raw_bars")).group_name == "ingest"
    assert graph.get(dg.AssetKey("stg_market__bars")).group_name == "staging"
    # dbt's source maps onto the ingest asset: lineage is one graph, not two.
    assert dg.AssetKey("raw_bars") in graph.get(dg.AssetKey("stg_market__bars")).parent_keys


def test_raw_bars_checks_are_blocking_and_cover_every_rule() -> None:
    specs = {spec.name: spec for spec in raw_bars.check_specs}
    assert set(specs) == {*RULE_NAMES, SCHEMA_CHECK, GATE_CHECK}
    assert all(spec.blocking for spec in specs.values())


def test_dbt_tests_are_asset_checks() -> None:
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key.path == ["stg_market__bars"]}
    assert {
        "unique_stg_market__bars_bar_id",
        "not_null_stg_market__bars_bar_id",
        "assert_stg_bars_ohlc_consistent",
    } <= checks


def test_partitions_are_trading_days_and_backfills_run_once() -> None:
    partitions = raw_bars.partitions_def
    keys = partitions.get_partition_keys()
    assert keys[0] == "1999-01-04" and keys[-1] == "2018-12-31"
    assert all(dt.date.fromisoformat(k).weekday() < 5 for k in keys)
    assert len(keys) == int(np.busday_count("1999-01-04", "2019-01-01"))
    assert raw_bars.backfill_policy == dg.BackfillPolicy.single_run()


def test_jobs() -> None:
    assert defs.resolve_job_def("ingest") is not None
    assert defs.resolve_job_def("features") is not None
