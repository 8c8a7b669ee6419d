"""The reference: an SMA crossover in backtrader (long-only, a fixed size, a fixed commission per order, filled
at the signal bar's close by cheat-on-close), used by the cross-check test and the speed benchmark."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd


def run_backtrader(
    close: np.ndarray, *, fast: int, slow: int, size: float, fee: float, cash: float
) -> tuple[list[tuple[str, int, int, float]], float]:
    """backtrader's trades (symbol ``S<column>``, bar index, side +1/−1, price) and final portfolio value."""

    class FixedPerOrder(bt.CommInfoBase):
        params = (("stocklike", True), ("commtype", bt.CommInfoBase.COMM_FIXED))

        def _getcommission(self, size, price, pseudoexec):
            return fee

    class Crossover(bt.Strategy):
        def __init__(self):
            self.cross = {d: bt.ind.CrossOver(bt.ind.SMA(d.close, period=fast), bt.ind.SMA(d.close, period=slow))
                          for d in self.datas}  # fmt: skip
            self.trades: list[tuple[str, object, int, float]] = []

        def next(self):
            for d in self.datas:
                if not self.getposition(d).size and self.cross[d][0] > 0:
                    self.buy(data=d, size=size)
                elif self.getposition(d).size and self.cross[d][0] < 0:
                    self.close(data=d)

        def notify_order(self, order):
            if order.status == order.Completed:
                when = bt.num2date(order.executed.dt).date()  # the bar it was executed on
                self.trades.append((order.data._name, when, 1 if order.isbuy() else -1, order.executed.price))

    cerebro = bt.Cerebro(stdstats=False)
    index = pd.date_range("2001-01-01", periods=close.shape[0], freq="D")
    for n in range(close.shape[1]):
        c = close[:, n]
        frame = pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1e6}, index=index)
        cerebro.adddata(bt.feeds.PandasData(dataname=frame), name=f"S{n}")
    cerebro.addstrategy(Crossover)
    cerebro.broker.setcash(cash)
    cerebro.broker.set_coc(True)
    cerebro.broker.addcommissioninfo(FixedPerOrder())
    [strategy] = cerebro.run()
    bar_of = {day.date(): i for i, day in enumerate(index)}
    trades = [(name, bar_of[when], side, price) for name, when, side, price in strategy.trades]
    return trades, float(cerebro.broker.getvalue())
