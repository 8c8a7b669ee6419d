"""Features: the dbt project as two asset definitions (the yearly history: staging views and incremental models;
the full-rebuild labels table), their jobs, and the weekly labels rebuild."""

import dagster as dg

from assets.defs.features.dbt import mem_dbt_history, mem_dbt_tables

features_job = dg.define_asset_job("features", selection=dg.AssetSelection.assets(mem_dbt_history))
# The labels: a full-rebuild table over the daily intermediates (no partition of them is ever final); rebuilt
# Saturday 05:30 UTC, before the models refit at 06:00 (start both in the UI).
labels_job = dg.define_asset_job("labels", selection=dg.AssetSelection.assets(mem_dbt_tables))
labels_schedule = dg.ScheduleDefinition(job=labels_job, cron_schedule="30 5 * * 6", execution_timezone="UTC")

defs = dg.Definitions(
    assets=[mem_dbt_history, mem_dbt_tables],
    jobs=[features_job, labels_job],
    schedules=[labels_schedule],
)
