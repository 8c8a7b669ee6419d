"""MEM's Dagster definitions: the whole DAG, loaded by ``workspace.yaml``."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from assets.defs.decisions.assets import trade_decisions
from assets.defs.execution.assets import executed_orders, order_fills
from assets.defs.execution.sensors import execute_orders_job, new_decisions
from assets.defs.features.dbt import DBT_PROJECT, mem_dbt_daily, mem_dbt_tables, mem_dbt_views
from assets.defs.ingest.assets import raw_bars
from assets.defs.models.assets import regime_model, slippage_model, vol_forecasts
from assets.defs.models.signal import decision_memory, signal_model
from assets.defs.risk.assets import risk_limits
from assets.partitions import DAILY
from assets.resources import LakeResource, MarketDataResource

ingest_job = dg.define_asset_job("ingest", selection=dg.AssetSelection.assets(raw_bars), partitions_def=DAILY)
features_job = dg.define_asset_job("features", selection=dg.AssetSelection.assets(mem_dbt_views))
features_daily_job = dg.define_asset_job(
    "features_daily", selection=dg.AssetSelection.assets(mem_dbt_daily), partitions_def=DAILY
)

# The labels: a full-rebuild table over the daily intermediates (no partition of them is ever final).
labels_job = dg.define_asset_job("labels", selection=dg.AssetSelection.assets(mem_dbt_tables))
models_job = dg.define_asset_job("models", selection=dg.AssetSelection.groups("models"))
# Models refit on a cadence, not on every partition: weekly, Saturday 06:00 UTC, on labels rebuilt at
# 05:30 (start both in the UI).
labels_schedule = dg.ScheduleDefinition(job=labels_job, cron_schedule="30 5 * * 6", execution_timezone="UTC")
models_schedule = dg.ScheduleDefinition(job=models_job, cron_schedule="0 6 * * 6", execution_timezone="UTC")

# Risk limits and trade decisions for a day (or a backfilled range), after that day's features and models.
decisions_job = dg.define_asset_job(
    "decisions", selection=dg.AssetSelection.assets(risk_limits, trade_decisions), partitions_def=DAILY
)

# Broker fills booked into the ledger for a day (paper: simulated against that day's bars).
fills_job = dg.define_asset_job("fills", selection=dg.AssetSelection.assets(order_fills), partitions_def=DAILY)

defs = dg.Definitions(
    assets=[
        raw_bars,
        mem_dbt_views,
        mem_dbt_daily,
        mem_dbt_tables,
        regime_model,
        vol_forecasts,
        slippage_model,
        signal_model,
        decision_memory,
        risk_limits,
        trade_decisions,
        executed_orders,
        order_fills,
    ],
    jobs=[
        ingest_job,
        features_job,
        features_daily_job,
        labels_job,
        models_job,
        decisions_job,
        execute_orders_job,
        fills_job,
    ],
    sensors=[new_decisions],
    schedules=[labels_schedule, models_schedule],
    resources={
        "lake": LakeResource(),
        "market": MarketDataResource(),
        # dbt is installed in the same environment as Dagster; do not rely on PATH.
        "dbt": DbtCliResource(project_dir=DBT_PROJECT, dbt_executable=str(Path(sys.executable).parent / "dbt")),
    },
)
