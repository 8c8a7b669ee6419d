"""Regime-dependent risk multiplier: the filtered-probability-weighted mean of per-regime multipliers.

``m(p) = sum_k p_k m_k`` is linear in the probabilities, so the book shrinks smoothly as the filter
grows confident in the volatile regime instead of jumping at a 0.5 threshold (no whipsaw trading
when the probability hovers near it), and it lies between the smallest and largest ``m_k``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mem_pipeline.risk.config import RiskError

PROBABILITY_TOLERANCE = 1e-6


def regime_multiplier(probabilities: Sequence[float], multipliers: Sequence[float]) -> float:
    """``sum_k p_k m_k``; ``probabilities`` (regime 0 = calm first) must be a distribution over the regimes."""
    p = np.asarray(probabilities, dtype=np.float64)
    m = np.asarray(multipliers, dtype=np.float64)
    if p.shape != m.shape:
        raise RiskError(
            f"regime: {p.size} regime probabilities but {m.size} multipliers (risk.regime_multipliers "
            "needs one per regime of the regime model)"
        )
    if not np.isfinite(p).all() or (p < -PROBABILITY_TOLERANCE).any():
        raise RiskError(f"regime: probabilities must be finite and >= 0, got {p.tolist()}")
    if abs(p.sum() - 1.0) > PROBABILITY_TOLERANCE:
        raise RiskError(f"regime: probabilities must sum to 1, got {p.sum()}")
    # Clipped to [min m, max m]: probabilities that sum to 1 + 1e-16 must not push it past the largest multiplier.
    return float(np.clip(np.clip(p, 0.0, 1.0) @ m, m.min(), m.max()))
