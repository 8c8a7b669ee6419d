"""Features: the dbt project as three asset definitions (views, daily incremental models, full tables), their
jobs, and the weekly labels rebuild."""

import dagster as dg

from assets.defs.features.dbt import mem_dbt_daily, mem_dbt_tables, mem_dbt_views

features_job = dg.define_asset_job("features", selection=dg.AssetSelection.assets(mem_dbt_views))
features_daily_job = dg.define_asset_job("features_daily", selection=dg.AssetSelection.assets(mem_dbt_daily))
# The labels: a full-rebuild table over the daily intermediates (no partition of them is ever final); rebuilt
# Saturday 05:30 UTC, before the models refit at 06:00 (start both in the UI).
labels_job = dg.define_asset_job("labels", selection=dg.AssetSelection.assets(mem_dbt_tables))
labels_schedule = dg.ScheduleDefinition(job=labels_job, cron_schedule="30 5 * * 6", execution_timezone="UTC")

defs = dg.Definitions(
    assets=[mem_dbt_views, mem_dbt_daily, mem_dbt_tables],
    jobs=[features_job, features_daily_job, labels_job],
    schedules=[labels_schedule],
)
