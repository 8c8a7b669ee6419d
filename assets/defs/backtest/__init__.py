"""Backtest: ``backtest_tuning`` (Optuna trials before the backtest's window), ``backtest`` (one partition per
variant: MEM, the static system, the baselines, the ablations) and ``backtest_report`` (every stored variant
compared), with a job for each, and the report's weekly schedule."""

import dagster as dg

from assets.defs.backtest.assets import backtest, backtest_report, backtest_tuning

tuning_job = dg.define_asset_job("tune_backtest", selection=dg.AssetSelection.assets(backtest_tuning))
backtest_job = dg.define_asset_job("run_backtest", selection=dg.AssetSelection.assets(backtest))
report_job = dg.define_asset_job("report_backtest", selection=dg.AssetSelection.assets(backtest_report))
#: The report redrawn weekly from the stored variants (Sunday 07:00 UTC, after Saturday's model refits); stopped
#: by default like every schedule: switch it on in the UI.
report_schedule = dg.ScheduleDefinition(job=report_job, cron_schedule="0 7 * * 0", execution_timezone="UTC")

defs = dg.Definitions(
    assets=[backtest_tuning, backtest, backtest_report],
    jobs=[tuning_job, backtest_job, report_job],
    schedules=[report_schedule],
)
