"""The vectorized backtest of entry/exit signals: long-only, a fixed size per trade, filled at the signal bar's
close with a fixed fee per order — the cross-check against backtrader and the speed benchmark's engine.

Only the state machine (flat → long on an entry, long → flat on an exit) walks the sparse signal events in
order; positions, cash and equity are whole-matrix numpy operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SignalRun:
    """Trades (bar index, symbol index, side +1/−1, price) in time order, and the equity per bar."""

    bars: np.ndarray
    symbols: np.ndarray
    sides: np.ndarray
    prices: np.ndarray
    equity: np.ndarray
    cash: float  # at the end

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1])


def run_signals(
    close: np.ndarray, entries: np.ndarray, exits: np.ndarray, *, size: float, fee_per_order: float, cash: float
) -> SignalRun:
    """Buy ``size`` at the close of a bar with an entry while flat, sell it at the close of a bar with an exit
    while long; every order pays ``fee_per_order``. Equity = cash + holdings at each bar's close."""
    if close.shape != entries.shape or close.shape != exits.shape:
        raise ValueError(f"close {close.shape}, entries {entries.shape} and exits {exits.shape} must match")
    symbol_of, bar_of = np.nonzero((entries | exits).T)  # events ordered by symbol, then bar
    long = np.zeros(close.shape[1], dtype=bool)
    trade_bars, trade_symbols, trade_sides = [], [], []
    for n, t in zip(symbol_of.tolist(), bar_of.tolist(), strict=True):
        if not long[n] and entries[t, n]:
            long[n] = True
            trade_bars.append(t), trade_symbols.append(n), trade_sides.append(1)
        elif long[n] and exits[t, n]:
            long[n] = False
            trade_bars.append(t), trade_symbols.append(n), trade_sides.append(-1)
    bars, symbols, sides = (np.asarray(x, dtype=np.int64) for x in (trade_bars, trade_symbols, trade_sides))
    order = np.lexsort((symbols, bars))
    bars, symbols, sides = bars[order], symbols[order], sides[order]
    prices = close[bars, symbols]
    delta = np.zeros(close.shape)
    np.add.at(delta, (bars, symbols), sides * size)
    flows = np.zeros(close.shape[0])
    np.add.at(flows, bars, -sides * size * prices - fee_per_order)
    cash_path = cash + np.cumsum(flows)
    holdings = np.cumsum(delta, axis=0)
    equity = cash_path + np.einsum("tn,tn->t", holdings, close)
    return SignalRun(bars, symbols, sides, prices, equity, float(cash_path[-1]))
