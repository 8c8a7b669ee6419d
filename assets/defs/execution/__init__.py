"""Execution: ``executed_orders`` (requested by the ``new_decisions`` sensor) and ``order_fills`` (the ``fills``
job: broker fills booked into the ledger; the paper broker fills against the day's bars)."""

import dagster as dg

from assets.defs.execution.assets import executed_orders, order_fills
from assets.defs.execution.sensors import execute_orders_job, new_decisions

fills_job = dg.define_asset_job("fills", selection=dg.AssetSelection.assets(order_fills))

defs = dg.Definitions(
    assets=[executed_orders, order_fills], jobs=[execute_orders_job, fills_job], sensors=[new_decisions]
)
