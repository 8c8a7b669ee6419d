"""The daily simulator: fills worked by hand (cost law, participation cap, lots, fees, cash, equity), and the
same fill as the paper broker's for the same order and bars (one cost law, one set of parameters)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from mem_pipeline.backtest.simulator import DailySimulator, Market, SimulatorConfig
from mem_pipeline.core.orders import Side
from mem_pipeline.execution.brokers.paper import PaperBroker, PaperConfig
from mem_pipeline.execution.orders import ChildOrder

D0 = dt.date(2024, 1, 2)


def _bars(opens: list[float], closes: list[float], volume: float = 1000.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [D0 + dt.timedelta(days=i) for i in range(len(opens))],
            "symbol": ["A"] * len(opens),
            "open": opens,
            "close": closes,
            "volume": [volume] * len(opens),
        }
    )


def test_fills_by_hand_partial_at_the_cap_in_lots_with_fees() -> None:
    paper = PaperConfig(participation_cap=0.1, eta=0.5, delta=0.6, noise_scale=0.0, default_sigma=0.02)
    market = Market.from_bars(_bars([10.0, 10.0, 12.0], [10.0, 11.0, 12.0]), paper)
    sim = DailySimulator(market, 10_000.0, paper, SimulatorConfig(fee_bps=10.0), np.array([7.0]))
    sim.step(0, np.array([150.0]))
    # Day 1: cap = 0.1 × 1000 = 100 shares, in lots of 7 → 98. ADV 1000 (day 0's volume); sigma: only one
    # earlier close, no return yet → the default 0.02; spread: the default 5 bps.
    cost1 = 5 / 2 + 0.5 * 0.02 * (98 / 1000) ** 0.6 * 1e4
    price1 = 10.0 * (1 + cost1 / 1e4)
    fee1 = 98 * price1 * 10 / 1e4
    cash1 = 10_000.0 - 98 * price1 - fee1
    assert sim.result.positions[1, 0] == 98.0
    assert sim.result.cash[1] == pytest.approx(cash1, rel=1e-12)
    assert sim.result.equity[1] == pytest.approx(cash1 + 98 * 11.0, rel=1e-12)
    sim.step(1, np.array([150.0]))
    # Day 2: 52 wanted → 49 in lots; sigma: the closes before day 2 give one return, and a std needs two:
    # still the default. A buy: the price moves up from the open, 12.
    cost2 = 5 / 2 + 0.5 * 0.02 * (49 / 1000) ** 0.6 * 1e4
    price2 = 12.0 * (1 + cost2 / 1e4)
    cash2 = cash1 - 49 * price2 - 49 * price2 * 10 / 1e4
    assert sim.result.positions[2, 0] == 147.0
    assert sim.result.equity[2] == pytest.approx(cash2 + 147 * 12.0, rel=1e-12)
    assert sim.result.costs[2] == pytest.approx(49 * (price2 - 12.0) + 49 * price2 * 10 / 1e4, rel=1e-12)


def test_a_sell_fill_equals_the_paper_brokers_fill_of_the_same_order(tmp_path) -> None:
    rng = np.random.default_rng(3)
    closes = list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 30))))
    opens = [closes[0], *closes[:-1]]
    bars = _bars(opens, closes, volume=5000.0)
    paper_config = PaperConfig(participation_cap=1.0, noise_scale=0.0)
    market = Market.from_bars(bars, paper_config)
    sim = DailySimulator(market, 100_000.0, paper_config, SimulatorConfig(fee_bps=0.0, noise=False))
    sim.position = np.array([300.0])
    sim.step(24, np.array([0.0]))  # decided at day 24's close, sold at day 25's open
    [ours] = sim.result.fills
    broker = PaperBroker(tmp_path / "paper", paper_config)
    decided = D0 + dt.timedelta(days=24)
    broker.submit(ChildOrder("c1", None, 0, "A", Side.SELL, 300.0, closes[24], decided))
    broker.on_bars(bars.filter(pl.col("date") <= D0 + dt.timedelta(days=25)))
    [fill] = broker.lookup("c1").fills
    assert (ours["date"], ours["quantity"]) == (fill.date, -fill.quantity)
    assert math.isclose(ours["price"], fill.price, rel_tol=1e-12)
    assert math.isclose(ours["cost_bps"], fill.cost_bps, rel_tol=1e-12)


def test_an_order_worked_in_slices_costs_what_the_paper_broker_charges_its_children(tmp_path) -> None:
    rng = np.random.default_rng(5)
    closes = list(50 * np.exp(np.cumsum(rng.normal(0, 0.015, 30))))
    bars = _bars([closes[0], *closes[:-1]], closes, volume=2000.0)
    paper_config = PaperConfig(participation_cap=1.0, noise_scale=0.0)
    market = Market.from_bars(bars, paper_config)
    sim = DailySimulator(market, 100_000.0, paper_config, SimulatorConfig(fee_bps=0.0, noise=False))
    sim.step(24, np.array([400.0]), np.array([4]))
    [ours] = sim.result.fills
    broker = PaperBroker(tmp_path / "paper", paper_config)
    decided = D0 + dt.timedelta(days=24)
    for k in range(4):  # the parent's four TWAP children, each its own trade under the law
        broker.submit(ChildOrder(f"c{k}", None, k, "A", Side.BUY, 100.0, closes[24], decided))
    broker.on_bars(bars.filter(pl.col("date") <= D0 + dt.timedelta(days=25)))
    children = [broker.lookup(f"c{k}").fills[0] for k in range(4)]
    paid = sum(f.price * f.quantity for f in children)
    assert ours["quantity"] == 400.0 and ours["slices"] == 4
    assert math.isclose(ours["price"] * 400.0, paid, rel_tol=1e-12)
    # Worked whole, the same order pays more under the concave law (4^0.6 times the impact part).
    whole = DailySimulator(market, 100_000.0, paper_config, SimulatorConfig(fee_bps=0.0, noise=False))
    whole.step(24, np.array([400.0]))
    assert whole.result.fills[0]["price"] > ours["price"]


def test_buy_and_hold_by_hand() -> None:
    from mem_pipeline.backtest.baselines import buy_and_hold
    from mem_pipeline.backtest.stats import summarize

    bars = pl.concat(
        [
            _bars([10.0, 10.0, 11.0, 12.0], [10.0, 10.5, 11.5, 12.5]).with_columns(symbol=pl.lit("A")),
            _bars([40.0, 40.0, 38.0, 36.0], [40.0, 39.0, 37.0, 35.0]).with_columns(symbol=pl.lit("B")),
        ]
    )
    paper = PaperConfig(participation_cap=1.0, eta=0.0, noise_scale=0.0)  # cost: half the 5 bps default spread
    result = buy_and_hold(Market.from_bars(bars, paper), 1_000.0, paper=paper, config=SimulatorConfig(fee_bps=0.0))
    # 500 each at day 0's close: A 50 shares, B 12 shares; bought at day 1's open (10, 40) + 2.5 bps.
    assert result.positions[1].tolist() == [50.0, 12.0] == result.positions[3].tolist()
    cash = 1_000.0 - 50 * 10 * 1.00025 - 12 * 40 * 1.00025
    assert result.equity[3] == pytest.approx(cash + 50 * 12.5 + 12 * 35.0, rel=1e-12)
    assert result.gross_exposure[3] == pytest.approx(50 * 12.5 + 12 * 35.0)
    figures = summarize(result.equity, result.gross_exposure, result.traded_notional, result.costs)
    assert figures["max_drawdown"] >= 0 and figures["turnover"] > 0 and figures["cost_drag"] > 0


def test_the_equity_chart_is_a_png_with_one_line_per_curve(tmp_path) -> None:
    from mem_pipeline.backtest.plots import plot_equity_and_drawdowns

    dates = [D0 + dt.timedelta(days=i) for i in range(30)]
    curves = {"mem": (dates, np.linspace(100, 130, 30)), "buy_and_hold": (dates, np.linspace(100, 90, 30))}
    path = plot_equity_and_drawdowns(curves, tmp_path / "reports" / "equity.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(path.read_bytes()[16:20], "big"), int.from_bytes(path.read_bytes()[20:24], "big")
    assert (width, height) == (1100, 700)
    with pytest.raises(ValueError, match="no equity curve"):
        plot_equity_and_drawdowns({}, tmp_path / "empty.png")
