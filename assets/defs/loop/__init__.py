"""The daily loop: the ``new_market_day`` sensor and its two jobs (``new_day``, ``trading_day``)."""

import dagster as dg

from assets.defs.loop.sensors import new_day_job, new_market_day, trading_day_job

defs = dg.Definitions(jobs=[new_day_job, trading_day_job], sensors=[new_market_day])
