"""Drawdown kill switch: past a drawdown threshold from the running equity peak, no new risk.

While it is on, a symbol's target may only move its position toward zero (reduce, close), never
increase its size nor flip its side; the limits may still shrink it further.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mem_pipeline.risk.config import RiskError

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class DrawdownState:
    equity: float  # the latest equity
    peak: float  # the running maximum of the curve up to and including the latest point
    drawdown: float  # 1 - equity / peak, in [0, 1]
    threshold: float
    kill_switch: bool  # drawdown >= threshold

    @classmethod
    def from_curve(cls, equity: Sequence[float] | FloatArray, threshold: float) -> DrawdownState:
        """State at the last point of an equity curve (oldest first)."""
        curve = np.asarray(equity, dtype=np.float64)
        if curve.ndim != 1 or curve.size == 0:
            raise RiskError("drawdown: the equity curve needs at least one value")
        if not np.isfinite(curve).all() or (curve <= 0).any():
            raise RiskError("drawdown: equity values must be finite and > 0 (an account at 0 cannot size risk)")
        return cls.from_peak(float(curve[-1]), float(curve.max()), threshold)

    @classmethod
    def from_peak(cls, equity: float, peak: float, threshold: float) -> DrawdownState:
        if not (np.isfinite(equity) and equity > 0 and np.isfinite(peak) and peak >= equity):
            raise RiskError(f"drawdown: need 0 < equity <= peak, got equity={equity}, peak={peak}")
        if not 0 < threshold < 1:
            raise RiskError(f"drawdown: threshold must be in (0, 1), got {threshold}")
        drawdown = 1.0 - equity / peak
        # Compared in equity terms with a relative slack: 1 - 108 / 120 is 0.09999999999999998 in floats.
        killed = equity <= peak * (1.0 - threshold) * (1.0 + 1e-12)
        return cls(equity, peak, drawdown, threshold, bool(killed))


def reduce_only(target: FloatArray, current: FloatArray) -> FloatArray:
    """``target`` clipped to the segment between 0 and ``current``: same side, no larger, else 0."""
    target = np.asarray(target, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    return np.where(current > 0, np.clip(target, 0.0, current), np.where(current < 0, np.clip(target, current, 0.0), 0))


def increases_risk(target: FloatArray, current: FloatArray, tolerance: float = 1e-9) -> NDArray[np.bool_]:
    """Per symbol: does moving from ``current`` to ``target`` add size or flip the side?"""
    target = np.asarray(target, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    bigger = np.abs(target) > np.abs(current) + tolerance * np.maximum(np.abs(current), 1.0)
    flipped = (target * current < 0) | ((current == 0) & (np.abs(target) > tolerance))
    return bigger | flipped
