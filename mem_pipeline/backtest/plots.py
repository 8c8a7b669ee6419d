"""PNG charts of backtests for reports and Dagster metadata: equity curves against the baselines and their
drawdowns (matplotlib's object API on the Agg canvas: no pyplot, no global backend switch)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def plot_equity_and_drawdowns(curves: Mapping[str, tuple[Sequence[dt.date], Sequence[float]]], path: Path) -> Path:
    """Equity curves (each rebased to 1 at its first day) over their drawdowns from the running peak, one line
    per variant or baseline; written to ``path`` (folders created)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("no equity curve to plot")
    figure = Figure(figsize=(11, 7), dpi=100)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.5]})
    for name, (dates, equity) in curves.items():
        e = np.asarray(equity, dtype=np.float64)
        top.plot(list(dates), e / e[0], label=name, linewidth=1.2)
        bottom.plot(list(dates), e / np.maximum.accumulate(e) - 1, linewidth=1.0)
    top.set_ylabel("growth of 1")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.set_ylabel("drawdown")
    bottom.grid(alpha=0.3)
    figure.suptitle("Equity against the baselines")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
