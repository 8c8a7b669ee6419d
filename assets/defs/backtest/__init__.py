"""Backtest: ``backtest_tuning`` (Optuna trials before the backtest's window), ``backtest`` (one partition per
variant: MEM, the static system, the baselines, the ablations) and ``backtest_report`` (every stored variant
compared), with a job for each."""

import dagster as dg

from assets.defs.backtest.assets import backtest, backtest_report, backtest_tuning

tuning_job = dg.define_asset_job("backtest_tuning", selection=dg.AssetSelection.assets(backtest_tuning))
backtest_job = dg.define_asset_job("backtest", selection=dg.AssetSelection.assets(backtest))
report_job = dg.define_asset_job("backtest_report", selection=dg.AssetSelection.assets(backtest_report))

defs = dg.Definitions(assets=[backtest_tuning, backtest, backtest_report], jobs=[tuning_job, backtest_job, report_job])
