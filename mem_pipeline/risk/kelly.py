"""Fractional Kelly sizing of a binary bet from a calibrated probability and a payoff ratio.

A bet that wins ``b`` per unit staked with probability ``p`` and loses the stake otherwise has the
growth-optimal stake ``f* = p - (1 - p) / b`` (the maximiser of ``p log(1 + b f) + (1 - p) log(1 - f)``).
The short side is the mirror bet: it wins with probability ``1 - p`` and its payoff ratio is ``1 / b``
(what the long wins, the short loses), so ``f*_short = (1 - p) - p b``. The two are never positive
together (``p (1 + b) > 1`` for the long, ``< 1`` for the short); with no edge the size is 0.

Stake = notional: the binary bet loses its whole stake, a day's position loses a fraction of it, so
reading Kelly's stake as the position's notional under-bets full Kelly (never over-bets, which is the
costly direction); the fraction (1/4 by default), the caps and the CVaR budget shrink it further.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mem_pipeline.risk.config import RiskConfig, RiskError

FloatArray = NDArray[np.float64]


def kelly_fraction(p_up: FloatArray | float, payoff_ratio: FloatArray | float) -> FloatArray:
    """Signed full-Kelly stake as a share of equity: > 0 long, < 0 short, 0 without edge."""
    p = np.asarray(p_up, dtype=np.float64)
    b = np.asarray(payoff_ratio, dtype=np.float64)
    if not np.isfinite(p).all() or ((p < 0) | (p > 1)).any():
        raise RiskError("kelly: p_up must be finite probabilities in [0, 1]")
    if not np.isfinite(b).all() or (b <= 0).any():
        raise RiskError("kelly: payoff_ratio must be finite and > 0")
    long = p - (1.0 - p) / b
    short = (1.0 - p) - p * b
    return np.where(long > 0, long, np.where(short > 0, -short, 0.0))


def kelly_notional(
    p_up: FloatArray | float,
    payoff_ratio: FloatArray | float,
    equity: float,
    fraction: float,
    multiplier: float = 1.0,
) -> FloatArray:
    """Signed target notional ``fraction * f* * multiplier * equity`` (see the module docstring for stake =
    notional); ``multiplier`` is the regime multiplier in [0, 1]."""
    if not 0 < fraction <= 1:
        raise RiskError(f"kelly: fraction must be in (0, 1], got {fraction}")
    if not 0 <= multiplier <= 1:
        raise RiskError(f"kelly: multiplier must be in [0, 1], got {multiplier}")
    return fraction * kelly_fraction(p_up, payoff_ratio) * multiplier * float(equity)


def raw_notional(
    p_up: FloatArray, payoff_ratio: FloatArray, equity: float, config: RiskConfig, multiplier: float = 1.0
) -> FloatArray:
    """Signed raw target notional per symbol before the limits: ``risk.sizing`` ``kelly`` (``kelly_notional``)
    or ``fixed`` (``fixed_fraction * equity * multiplier`` in the direction of the edge, the static sizing
    the backtest's ``no_kelly`` and ``static`` variants use); none where ``|p_up - 0.5| <= risk.min_edge``."""
    p = np.asarray(p_up, dtype=np.float64)
    if config.sizing == "fixed":
        if not np.isfinite(p).all() or ((p < 0) | (p > 1)).any():
            raise RiskError("fixed sizing: p_up must be finite probabilities in [0, 1]")
        if not 0 <= multiplier <= 1:
            raise RiskError(f"fixed sizing: multiplier must be in [0, 1], got {multiplier}")
        sized = np.sign(p - 0.5) * config.fixed_fraction * multiplier * float(equity)
    else:
        sized = kelly_notional(p, payoff_ratio, equity, config.kelly_fraction, multiplier)
    return np.where(np.abs(p - 0.5) > config.min_edge, sized, 0.0)
