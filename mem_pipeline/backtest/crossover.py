"""Moving-average crossover signals on a wide close matrix (bars × symbols), vectorized.

``sma`` is null (NaN) until its window is full. A cross up at bar t: the last non-zero difference fast − slow
before t was negative and at t fast > slow (a cross down mirrors it) — the definition backtrader's ``CrossOver``
uses, so equal averages never count as a cross by themselves.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def sma(close: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average down the rows of ``close`` (bars × symbols); NaN for the first ``window − 1`` bars."""
    if window < 1:
        raise ValueError(f"sma window must be >= 1, got {window}")
    out = np.full(close.shape, np.nan)
    if close.shape[0] >= window:
        out[window - 1 :] = sliding_window_view(close, window, axis=0).mean(axis=-1)
    return out


def _last_nonzero(diff: np.ndarray) -> np.ndarray:
    """``diff`` with each zero replaced by the last non-zero value above it (NaN stays NaN until one exists)."""
    valid = ~np.isnan(diff) & (diff != 0)
    rows = np.where(valid, np.arange(diff.shape[0])[:, None], -1)
    np.maximum.accumulate(rows, axis=0, out=rows)
    filled = diff[np.maximum(rows, 0), np.arange(diff.shape[1])[None, :]]
    return np.where(rows >= 0, filled, np.where(np.isnan(diff), np.nan, 0.0))


def crossover_signals(close: np.ndarray, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    """``(entries, exits)``: boolean bars × symbols, fast SMA crossing above / below the slow SMA."""
    if not 0 < fast < slow:
        raise ValueError(f"crossover needs 0 < fast < slow, got fast={fast}, slow={slow}")
    diff = sma(close, fast) - sma(close, slow)
    before = np.full(diff.shape, np.nan)
    before[1:] = _last_nonzero(diff)[:-1]
    with np.errstate(invalid="ignore"):
        return (before < 0) & (diff > 0), (before > 0) & (diff < 0)
