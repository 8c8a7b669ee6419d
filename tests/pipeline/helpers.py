"""Helpers for pipeline tests."""

from __future__ import annotations

import datetime as dt

import dagster as dg

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def range_tags(start: dt.date, end: dt.date) -> dict[str, str]:
    return {RANGE_START: start.isoformat(), RANGE_END: end.isoformat()}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}
