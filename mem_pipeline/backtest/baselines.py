"""Baselines the decision kernel is measured against, traded in the same simulator (same cost law, lots, fees).

``buy_and_hold``: equal weight at the first day's close (each symbol gets an equal share of the starting cash,
in whole lots, bought at the next open), then held.
"""

from __future__ import annotations

import numpy as np

from mem_pipeline.backtest.simulator import DailySimulator, Market, SimResult, SimulatorConfig
from mem_pipeline.execution.brokers.paper import PaperConfig


def buy_and_hold(
    market: Market,
    starting_cash: float,
    first: int = 0,
    paper: PaperConfig | None = None,
    config: SimulatorConfig | None = None,
) -> SimResult:
    """Equal-weight buy and hold from day ``first``'s close (symbols without a close that day are left out)."""
    sim = DailySimulator(market, starting_cash, paper, config)
    close = market.close[first]
    tradable = np.isfinite(close) & (close > 0)
    targets = np.zeros(len(market.symbols))
    targets[tradable] = (
        np.floor(starting_cash / tradable.sum() / close[tradable] / sim.lots[tradable]) * sim.lots[tradable]
    )
    for t in range(first, len(market.dates) - 1):
        sim.step(t, targets if t == first else sim.position)
    return sim.result
