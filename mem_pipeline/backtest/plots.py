"""PNG charts of backtests for reports and Dagster metadata: equity curves against the baselines and their
drawdowns, the market shaded by the volatile regime's probability, calibration curves, cost against order size
(matplotlib's object API on the Agg canvas: no pyplot, no global backend switch)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float, height: float, rows: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """A figure on the Agg canvas and its ``rows`` axes (one ``Axes``, or an array of them)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as AggFigure

    figure = AggFigure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, 1, **kwargs)


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def plot_equity_and_drawdowns(curves: Mapping[str, tuple[Sequence[dt.date], Sequence[float]]], path: Path) -> Path:
    """Equity curves (each rebased to 1 at its first day) over their drawdowns from the running peak, one line
    per variant or baseline; written to ``path`` (folders created)."""
    if not curves:
        raise ValueError("no equity curve to plot")
    figure, (top, bottom) = _figure(11, 7, 2, sharex=True, gridspec_kw={"height_ratios": [3, 1.5]})
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors  # 20 distinct colours: a report has up to 11 curves
    for k, (name, (dates, equity)) in enumerate(curves.items()):
        e = np.asarray(equity, dtype=np.float64)
        first = k == 0  # the first curve (MEM in a report) drawn bold and black, over the others
        style = {"color": "black" if first else palette[(2 * k) % 20 + (k >= 10)], "zorder": 3 if first else 2}
        top.plot(list(dates), e / e[0], label=name, linewidth=2.0 if first else 1.1, **style)
        bottom.plot(list(dates), e / np.maximum.accumulate(e) - 1, linewidth=1.4 if first else 0.9, **style)
    top.set_ylabel("growth of 1")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.set_ylabel("drawdown")
    bottom.grid(alpha=0.3)
    figure.suptitle("Equity against the baselines")
    return _save(figure, path)


def plot_regime_shading(dates: Sequence[dt.date], market_return: Sequence[float], p_volatile: Sequence[float],
                        path: Path) -> Path:  # fmt: skip
    """The market's growth of 1 (cumulated daily log returns) over a band whose height is each day's filtered
    probability of the volatile regime (what the decisions were sized with)."""
    figure, ax = _figure(11, 4.5)
    r = np.nan_to_num(np.asarray(market_return, dtype=np.float64))
    ax.plot(list(dates), np.exp(np.cumsum(r)), color="black", linewidth=1.0, label="market (growth of 1)")
    ax.set_ylabel("market")
    shade = ax.twinx()
    shade.fill_between(
        list(dates), 0, np.asarray(p_volatile, dtype=np.float64), color="tab:red", alpha=0.25, step="mid"
    )
    shade.set_ylim(0, 1)
    shade.set_ylabel("P(volatile regime)")
    ax.set_title("Market and the volatile regime's filtered probability")
    return _save(figure, path)


def calibration_points(p_up: np.ndarray, up: np.ndarray, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean prediction and observed frequency in ``n_bins`` quantile bins of ``p_up`` (equal counts, so the
    narrow range of daily direction probabilities still gets ``n_bins`` points)."""
    p, y = np.asarray(p_up, dtype=np.float64), np.asarray(up, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    bins = np.array_split(order, n_bins)
    bins = [b for b in bins if b.size]
    return np.array([p[b].mean() for b in bins]), np.array([y[b].mean() for b in bins])


def plot_calibration(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Reliability curves (quantile bins) of each variant's published P(up) against the realized direction."""
    figure, ax = _figure(6, 6)
    lows, highs = [], []
    for name, (p, up) in curves.items():
        mean, observed = calibration_points(p, up)
        ax.plot(mean, observed, marker="o", linewidth=1.0, label=name)
        lows.append(min(mean.min(), observed.min()))
        highs.append(max(mean.max(), observed.max()))
    lo, hi = (min(lows) - 0.01, max(highs) + 0.01) if lows else (0.0, 1.0)
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", label="perfect calibration")
    ax.set_xlabel("mean predicted P(up), quantile bins")
    ax.set_ylabel("observed frequency of up")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(figure, path)


def plot_cost_vs_size(fills: Mapping[str, tuple[np.ndarray, np.ndarray]], law: tuple[np.ndarray, np.ndarray],
                      path: Path) -> Path:  # fmt: skip
    """Each fill's cost in bps against its size over ADV (log scale), per variant, with the law's expected cost."""
    figure, ax = _figure(8, 5)
    for name, (size, cost) in fills.items():
        keep = np.asarray(size) > 0
        ax.scatter(np.asarray(size)[keep], np.asarray(cost)[keep], s=4, alpha=0.4, label=name)
    ax.plot(*law, color="black", linewidth=1.2, label="expected (the cost law)")
    ax.set_xscale("log")
    ax.set_xlabel("order size / ADV")
    ax.set_ylabel("cost (bps)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(figure, path)
