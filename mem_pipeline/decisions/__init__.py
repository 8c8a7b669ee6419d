"""Trade decisions: a day's inputs gathered once (``inputs``), ``decide`` (sizing through the risk limits, orders
with costs and schedules), content-hash versions, the append-only store and the blocking checks."""
