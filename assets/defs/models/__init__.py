"""Models: regime, volatility, slippage and signal refits (unpartitioned, up to ``as_of``), the decision memory,
and the weekly refit schedule."""

import dagster as dg

from assets.defs.models.assets import regime_model, slippage_model, vol_forecasts
from assets.defs.models.signal import decision_memory, signal_model

# Models refit on a cadence, not on every partition: weekly, Saturday 06:00 UTC, after the labels rebuild.
models_job = dg.define_asset_job("models", selection=dg.AssetSelection.groups("models"))
models_schedule = dg.ScheduleDefinition(job=models_job, cron_schedule="0 6 * * 6", execution_timezone="UTC")

defs = dg.Definitions(
    assets=[regime_model, vol_forecasts, slippage_model, signal_model, decision_memory],
    jobs=[models_job],
    schedules=[models_schedule],
)
