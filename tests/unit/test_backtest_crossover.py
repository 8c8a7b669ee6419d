"""The vectorized signal engine against backtrader: SMA(10/30) crossover, a fixed size, a fixed commission per
order, fills at the signal bar's close (backtrader's cheat-on-close). Identical trades (symbol, bar, side, price)
and final equity to the cent; plus hand-worked cases for the crossover definition and the books."""

from __future__ import annotations

import numpy as np
import pytest

from mem_pipeline.backtest.crossover import crossover_signals, sma
from mem_pipeline.backtest.signals import run_signals
from tests.backtrader_crossover import run_backtrader

SIZE, FEE, CASH = 10.0, 1.25, 1_000_000.0


def _market(n_bars: int, n_symbols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.015, (n_bars, n_symbols)), axis=0))


def test_sma_crossover_trades_and_final_equity_equal_backtraders() -> None:
    close = _market(600, 6, seed=7)
    entries, exits = crossover_signals(close, 10, 30)
    entries[-1] = exits[-1] = False  # backtrader never executes an order placed on the last bar
    run = run_signals(close, entries, exits, size=SIZE, fee_per_order=FEE, cash=CASH)
    theirs, their_value = run_backtrader(close, fast=10, slow=30, size=SIZE, fee=FEE, cash=CASH)
    ours = [
        (f"S{n}", int(t), int(s), float(p))
        for t, n, s, p in zip(run.bars, run.symbols, run.sides, run.prices, strict=True)
    ]
    assert len(ours) > 40  # the market does cross, many times
    # prices to 1e-9: backtrader books the executed price as (price·size)/size, which can move the last bit
    assert sorted((n, t, s, round(p, 9)) for n, t, s, p in ours) == sorted(
        (n, t, s, round(p, 9)) for n, t, s, p in theirs
    )
    assert round(run.final_equity, 2) == round(their_value, 2)


def test_a_cross_needs_the_last_nonzero_difference_of_the_other_sign() -> None:
    # fast − slow by hand (window 1 vs 2 over these closes): NaN, +0.5, 0, −0.5, 0, +1 ...
    close = np.array([[1.0], [2.0], [2.0], [1.0], [1.0], [3.0]])
    np.testing.assert_allclose(sma(close, 2)[:, 0], [np.nan, 1.5, 2.0, 1.5, 1.0, 2.0])
    entries, exits = crossover_signals(close, 1, 2)
    # diffs: nan, .5, 0, -.5, 0, 1 -> down at 3 (last non-zero before: +.5), up at 5 (last non-zero: -.5)
    assert entries[:, 0].tolist() == [False, False, False, False, False, True]
    assert exits[:, 0].tolist() == [False, False, False, True, False, False]


def test_books_by_hand_fees_cash_and_marked_equity() -> None:
    close = np.array([[10.0, 20.0], [11.0, 21.0], [12.0, 19.0], [9.0, 18.0]])
    entries = np.array([[True, False], [False, True], [True, False], [False, False]])  # bar 2: already long
    exits = np.array([[False, False], [False, False], [False, True], [True, False]])
    run = run_signals(close, entries, exits, size=2.0, fee_per_order=1.0, cash=100.0)
    assert list(zip(run.bars, run.symbols, run.sides, strict=True)) == [(0, 0, 1), (1, 1, 1), (2, 1, -1), (3, 0, -1)]
    # cash: 100 − 20 − 1 → 79; − 42 − 1 → 36; + 38 − 1 → 73; + 18 − 1 → 90
    assert run.cash == pytest.approx(90.0)
    np.testing.assert_allclose(run.equity, [79 + 20, 36 + 22 + 42, 73 + 24, 90.0])
