"""Which execution schedule a parent order gets, and in how many child slices.

Rule, by the order's size over ADV (``participation``, the share of a day's volume it would be):

* ``<= twap_max_participation`` — TWAP: impact is negligible, so the simplest even split is best
  and reveals least;
* ``<= vwap_max_participation`` — VWAP: impact starts to matter, so follow the intraday volume
  curve to keep participation even;
* above — Almgren–Chriss: impact dominates; the executor trades impact cost against timing risk
  (vol) with the slippage model, front-loading when vol is high.

``n_slices = ceil(participation / max_child_participation)`` within ``[1, max_slices]``: each child
stays a small share of ADV.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mem_pipeline.core.orders import Schedule
from mem_pipeline.decisions.config import DecisionConfig


def choose_schedule(
    participation: NDArray[np.float64], config: DecisionConfig
) -> tuple[NDArray[np.object_], NDArray[np.int64]]:
    """``(schedule names, n_slices)`` per order (see the module docstring)."""
    x = np.asarray(participation, dtype=np.float64)
    names = np.where(
        x <= config.twap_max_participation,
        str(Schedule.TWAP),
        np.where(x <= config.vwap_max_participation, str(Schedule.VWAP), str(Schedule.ALMGREN_CHRISS)),
    ).astype(object)
    slices = np.clip(np.ceil(x / config.max_child_participation - 1e-12), 1, config.max_slices).astype(np.int64)
    return names, slices
