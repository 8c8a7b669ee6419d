"""SMA(10/30) crossover on 100 symbols × 10 years of daily bars (252,000 candles): candles per second of MEM's
vectorized signal engine, vectorbt and backtrader, alternating in one run (targets: ≥ 500× backtrader, faster
than vectorbt).

Usage: python -m bench.bench_backtest [repeats] [backtrader_repeats]

The same strategy everywhere: long-only, 10 shares a trade, 1.25 per order, filled at the signal bar's close
(backtrader: cheat-on-close), 1,000,000 starting cash shared by all symbols. Each engine's final equity is
printed beside its time; MEM's must equal backtrader's to the cent (asserted). backtrader never executes an order
placed on the last bar (its cheat-on-close fill comes in the next cycle, which never comes), so the last bar's
signals are dropped for MEM and vectorbt. vectorbt's first call compiles
its numba kernels: that warm-up is timed apart and not in the median. Wall (perf_counter) and CPU
(process_time) seconds per run; the machine's load average is in the table header.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from bench.harness import Timing, report
from mem_pipeline.backtest.crossover import crossover_signals
from mem_pipeline.backtest.signals import run_signals

N_SYMBOLS, N_BARS = 100, 2520
SIZE, FEE, CASH, FAST, SLOW = 10.0, 1.25, 1_000_000.0, 10, 30


def market(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.015, (N_BARS, N_SYMBOLS)), axis=0))


def mem(close: np.ndarray) -> float:
    entries, exits = crossover_signals(close, FAST, SLOW)
    entries[-1] = exits[-1] = False  # backtrader never executes an order placed on the last bar
    return run_signals(close, entries, exits, size=SIZE, fee_per_order=FEE, cash=CASH).final_equity


def vectorbt(close: np.ndarray) -> float:
    import vectorbt as vbt

    frame = pd.DataFrame(close)
    fast, slow = vbt.MA.run(frame, FAST), vbt.MA.run(frame, SLOW)
    entries, exits = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
    entries.iloc[-1] = exits.iloc[-1] = False  # as for MEM: backtrader's last-bar orders never execute
    portfolio = vbt.Portfolio.from_signals(
        frame,
        entries,
        exits,
        size=SIZE,
        fixed_fees=FEE,
        init_cash=CASH,
        cash_sharing=True,
        group_by=True,
    )
    return float(portfolio.value().iloc[-1])


def backtrader(close: np.ndarray) -> float:
    from tests.backtrader_crossover import run_backtrader

    return run_backtrader(close, fast=FAST, slow=SLOW, size=SIZE, fee=FEE, cash=CASH)[1]


def timed(fn: Callable[[np.ndarray], float], close: np.ndarray) -> tuple[float, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn(close)
    return time.perf_counter() - wall, time.process_time() - cpu, value


def main(repeats: int = 5, bt_repeats: int = 2) -> None:
    close = market()
    candles = close.size
    warm = timed(vectorbt, close)  # imports and numba compilation
    samples: dict[str, list[tuple[float, float, float]]] = {"MEM": [], "vectorbt": [], "backtrader": []}
    for r in range(repeats):
        samples["MEM"].append(timed(mem, close))
        samples["vectorbt"].append(timed(vectorbt, close))
        if r < bt_repeats:
            samples["backtrader"].append(timed(backtrader, close))
    values = {k: v[0][2] for k, v in samples.items()}
    assert round(values["MEM"], 2) == round(values["backtrader"], 2), values

    def timing(name: str) -> Timing:
        runs = samples[name]
        wall, cpu = statistics.median(w for w, _, _ in runs), statistics.median(c for _, c, _ in runs)
        return Timing(
            name,
            wall,
            len(runs),
            f"{candles / wall:,.0f} candles/s; CPU {cpu:.3f} s; final equity {values[name]:,.2f}",
        )

    report(
        f"SMA({FAST}/{SLOW}) crossover, {N_SYMBOLS} symbols × {N_BARS} daily bars ({candles:,} candles)",
        [timing("backtrader"), timing("vectorbt"), timing("MEM")],
        baseline="backtrader",
    )
    print(f"vectorbt's first call (imports + numba compilation): {warm[0]:.1f} s wall, {warm[1]:.1f} s CPU")


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 5,
        int(sys.argv[2]) if len(sys.argv) > 2 else 2,
    )
