"""Decisions: ``trade_decisions`` and the ``decisions`` job (the day's risk limits, then its decision)."""

import dagster as dg

from assets.defs.decisions.assets import trade_decisions
from assets.defs.risk.assets import risk_limits

decisions_job = dg.define_asset_job("decisions", selection=dg.AssetSelection.assets(risk_limits, trade_decisions))

defs = dg.Definitions(assets=[trade_decisions], jobs=[decisions_job])
