"""The daily simulator: target positions decided at a day's close are traded at the next day's open with the
paper broker's cost law (``execution.impact``) and parameters (``execution.paper``: impact, participation cap,
ADV and volatility window), in whole lots, paying a fee; it books positions, cash and equity.

Path-dependent (sizes depend on equity and positions so far), so it steps day by day; each step is whole-vector
numpy over the symbols. What a day cannot fill (participation cap, no bar) is not carried: the next day's target
decides again. ``noise`` draws the law's ``z`` from a generator seeded with ``execution.paper.seed`` (the same
run gives the same fills); off, every fill pays the expected cost.

Schedules: an order worked in ``n`` child slices (the decision's ``n_slices``) fills as the paper broker fills
children, each its own trade under the law: with equal slices of ``q/n`` the average cost is
``impact_cost_bps(q/(n·ADV), sigma, spread, z/√n)`` (the mean of ``n`` independent child noises has the
spread of one ``z`` over ``√n``). Unequal VWAP / Almgren–Chriss slices are taken as equal here, which slightly
understates their cost under a concave law. ``n = 1``: the whole order at the open.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import polars as pl

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.errors import MemError
from mem_pipeline.execution.brokers.paper import PaperConfig
from mem_pipeline.execution.impact import fill_price, impact_cost_bps, with_fill_stats


class BacktestError(MemError):
    """Bad backtest input or configuration (names the key or column and the rule broken)."""


@dataclass(frozen=True)
class SimulatorConfig(ParamsConfig):
    """``backtest.simulator`` in params.yaml; the cost law's parameters are ``execution.paper``'s."""

    SECTION: ClassVar[str] = "backtest.simulator"
    ERROR: ClassVar[type[Exception]] = BacktestError

    fee_bps: float = 1.0  # on each fill's notional
    noise: bool = True

    def __post_init__(self) -> None:
        if self.fee_bps < 0:
            raise BacktestError(f"backtest.simulator.fee_bps must be >= 0, got {self.fee_bps}")


@dataclass(frozen=True)
class Market:
    """Bars as day × symbol matrices (NaN where a symbol has no bar), with the cost law's point-in-time stats."""

    dates: tuple[dt.date, ...]
    symbols: tuple[str, ...]
    open: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    adv: np.ndarray
    sigma: np.ndarray
    spread_bps: np.ndarray

    @classmethod
    def from_bars(cls, bars: pl.DataFrame, paper: PaperConfig) -> Market:
        missing = [c for c in ("date", "symbol", "open", "close", "volume") if c not in bars.columns]
        if missing:
            raise BacktestError(f"backtest bars: missing columns {missing}")
        stats = with_fill_stats(
            bars.sort("symbol", "date"),
            adv_window=paper.adv_window,
            default_sigma=paper.default_sigma,
            default_spread_bps=paper.default_spread_bps,
        )
        dates = tuple(sorted(set(stats["date"].to_list())))
        symbols = tuple(sorted(set(stats["symbol"].to_list())))

        def wide(column: str) -> np.ndarray:
            frame = stats.pivot(on="symbol", index="date", values=column, sort_columns=True).sort("date")
            return frame.select(symbols).to_numpy().astype(np.float64)

        names = ("open", "close", "volume", "_adv", "_sigma", "_spread_bps")
        return cls(dates, symbols, *(wide(c) for c in names))


@dataclass
class SimResult:
    """Per day (rows) and symbol (columns): positions after the day's fills; per day: cash, equity (marked at
    the close, the last close where a symbol has no bar), cost paid (impact and fees, in cash)."""

    dates: tuple[dt.date, ...]
    symbols: tuple[str, ...]
    positions: np.ndarray
    cash: np.ndarray
    equity: np.ndarray
    costs: np.ndarray
    traded_notional: np.ndarray
    gross_exposure: np.ndarray  # Σ |position| · mark at each close
    fills: list[dict[str, object]] = field(default_factory=list)

    def daily(self, days: list[dt.date]) -> pl.DataFrame:
        """``trade_date, equity, cash, gross_exposure, traded_notional, costs`` on ``days`` (each at its close)."""
        index = {d: i for i, d in enumerate(self.dates)}
        rows = [index[d] for d in days]
        columns = ("equity", "cash", "gross_exposure", "traded_notional", "costs")
        return pl.DataFrame({"trade_date": days, **{c: getattr(self, c)[rows] for c in columns}})


class DailySimulator:
    """Trades toward targets one day at a time: ``step(t, targets)`` decides at day ``t``'s close and fills at
    day ``t + 1``'s open. ``starting_cash``: the account (the decision kernel's ``risk.account_equity``)."""

    def __init__(
        self,
        market: Market,
        starting_cash: float,
        paper: PaperConfig | None = None,
        config: SimulatorConfig | None = None,
        lot_sizes: np.ndarray | None = None,
    ) -> None:
        self.m, self.paper, self.config = market, paper or PaperConfig(), config or SimulatorConfig()
        n_days, n = market.close.shape
        self.lots = np.ones(n) if lot_sizes is None else np.asarray(lot_sizes, dtype=np.float64)
        self.position = np.zeros(n)
        if not starting_cash > 0:
            raise BacktestError(f"starting cash must be > 0, got {starting_cash}")
        self.cash = float(starting_cash)
        self.marks = market.close.copy()  # the last close where a symbol has no bar
        _forward_fill(self.marks)
        self.result = SimResult(
            market.dates,
            market.symbols,
            np.zeros((n_days, n)),
            np.full(n_days, self.cash),
            np.full(n_days, self.cash),
            np.zeros(n_days),
            np.zeros(n_days),
            np.zeros(n_days),
        )
        rng = np.random.default_rng(self.paper.seed)
        self.z = rng.standard_normal((n_days, n)) if self.config.noise else np.zeros((n_days, n))

    def step(self, t: int, targets: np.ndarray, slices: np.ndarray | None = None) -> None:
        """Targets (shares per symbol) decided at day ``t``'s close; fill toward them at day ``t + 1``'s open,
        each symbol's order in ``slices`` child slices (default 1; see the module docstring)."""
        m, p, r, u = self.m, self.paper, self.result, t + 1
        if u >= len(m.dates):
            return
        wanted = np.nan_to_num(np.asarray(targets, dtype=np.float64)) - self.position
        cap = p.participation_cap * np.nan_to_num(m.volume[u])
        q = np.sign(wanted) * np.minimum(np.abs(wanted), cap)
        q = np.trunc(q / self.lots) * self.lots  # whole lots, toward zero
        q[np.isnan(m.open[u])] = 0.0
        traded = q != 0
        cost_bps = np.zeros_like(q)
        price = np.zeros_like(q)
        if traded.any():
            n = np.ones(traded.sum()) if slices is None else np.maximum(np.asarray(slices, np.float64)[traded], 1.0)
            size = np.abs(q[traded]) / m.adv[u, traded] / n
            cost_bps[traded] = impact_cost_bps(
                size,
                m.sigma[u, traded],
                m.spread_bps[u, traded],
                self.z[u, traded] / np.sqrt(n),
                eta=p.eta,
                delta=p.delta,
                noise_scale=p.noise_scale,
            )
            price[traded] = fill_price(m.open[u, traded], np.sign(q[traded]), cost_bps[traded])
        notional = np.abs(q) * price
        fees = notional * self.config.fee_bps / 1e4
        self.cash -= float(np.sum(q * price) + np.sum(fees))
        self.position = self.position + q
        r.positions[u] = self.position
        r.cash[u] = self.cash
        r.equity[u] = self.cash + float(np.nansum(self.position * self.marks[u]))
        r.gross_exposure[u] = float(np.nansum(np.abs(self.position) * self.marks[u]))
        r.costs[u] = float(np.sum(q * (price - np.nan_to_num(m.open[u]))) + np.sum(fees))  # impact (signed) + fees
        r.traded_notional[u] = float(np.sum(notional))
        for j in np.flatnonzero(traded):
            r.fills.append(
                {"date": m.dates[u], "symbol": m.symbols[j], "quantity": float(q[j]), "price": float(price[j]),
                 "cost_bps": float(cost_bps[j]), "fee": float(fees[j]), "size_over_adv": float(abs(q[j]) / m.adv[u, j]),
                 "sigma": float(m.sigma[u, j]), "spread_bps": float(m.spread_bps[u, j]),
                 "slices": int(1 if slices is None else max(slices[j], 1))}
            )  # fmt: skip

    def run(self, targets: np.ndarray) -> SimResult:
        """Every day's targets at once (day × symbol, decided at each close): the vectorizable case."""
        for t in range(len(self.m.dates) - 1):
            self.step(t, targets[t])
        return self.result


def _forward_fill(a: np.ndarray) -> None:
    """Fill NaNs down each column with the last value above (in place)."""
    rows = np.where(np.isnan(a), 0, np.arange(a.shape[0])[:, None])
    np.maximum.accumulate(rows, axis=0, out=rows)
    a[:] = a[rows, np.arange(a.shape[1])[None, :]]
