"""Scores of probability forecasts of a 0/1 outcome: log-loss, Brier, the reliability table and the
expected calibration error (ECE) over equal-width bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] for log-loss
N_BINS = 10


def log_loss(p: FloatArray, y: FloatArray) -> float:
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier(p: FloatArray, y: FloatArray) -> float:
    return float(np.mean((p - y) ** 2))


def reliability_table(p: FloatArray, y: FloatArray, n_bins: int = N_BINS) -> list[dict[str, Any]]:
    """Equal-width bins on [0, 1]: bin index, mean predicted, observed frequency, count (empty bins omitted)."""
    which = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "bin": b,
                    "lower": b / n_bins,
                    "upper": (b + 1) / n_bins,
                    "mean_predicted": float(p[mask].mean()),
                    "observed_frequency": float(y[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return rows


def expected_calibration_error(p: FloatArray, y: FloatArray, n_bins: int = N_BINS) -> float:
    """ECE: count-weighted mean |mean predicted - observed frequency| over equal-width bins."""
    table = reliability_table(p, y, n_bins)
    n = sum(r["count"] for r in table)
    return float(sum(r["count"] * abs(r["mean_predicted"] - r["observed_frequency"]) for r in table) / n)
