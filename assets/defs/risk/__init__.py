"""Risk: ``risk_limits``, the day's inputs and risk assessment (run by the ``decisions`` job)."""

import dagster as dg

from assets.defs.risk.assets import risk_limits

defs = dg.Definitions(assets=[risk_limits])
