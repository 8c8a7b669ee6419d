"""Ledoit–Wolf shrinkage covariance of scenario returns, and the portfolio vol it implies.

With 250 days and hundreds of symbols the sample covariance is singular and its smallest eigenvalues
are far too small: a sizing step would find "riskless" long-short books that are noise. Ledoit & Wolf
(2004) shrink it toward ``mu I`` (``mu`` = mean variance) with the intensity that minimises the expected
Frobenius loss, estimated from the data. scikit-learn's ``ledoit_wolf`` implements the estimator
(without computing a precision matrix, which MEM does not need).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.covariance import ledoit_wolf

from mem_pipeline.risk.config import RiskError

FloatArray = NDArray[np.float64]


def ledoit_wolf_covariance(returns: FloatArray) -> tuple[FloatArray, float]:
    """``(covariance (n, n), shrinkage intensity in [0, 1])`` of the rows of ``returns`` (T, n), demeaned."""
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise RiskError(f"ledoit_wolf: needs a (T >= 2, n >= 1) matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise RiskError("ledoit_wolf: returns must be finite")
    cov, shrinkage = ledoit_wolf(x, assume_centered=False)
    return np.asarray(cov, dtype=np.float64), float(shrinkage)


def portfolio_vol(covariance: FloatArray, weights: FloatArray) -> float:
    """``sqrt(w' S w)`` (in the units of ``weights``; clipped at 0 against rounding)."""
    w = np.asarray(weights, dtype=np.float64)
    return float(np.sqrt(max(float(w @ covariance @ w), 0.0)))
