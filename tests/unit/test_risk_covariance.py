"""Ledoit–Wolf: scikit-learn (what the code calls) against the paper's formulas written out here."""

from __future__ import annotations

import numpy as np
import pytest

from mem_pipeline.risk import RiskError
from mem_pipeline.risk.covariance import ledoit_wolf_covariance, portfolio_vol


def _ledoit_wolf_by_hand(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit & Wolf (2004), Lemma 3.2 / Theorem 3.2 estimators, with the norm ||A||^2 = tr(A A') / p."""
    t, p = x.shape
    y = x - x.mean(axis=0)
    s = y.T @ y / t
    m = np.trace(s) / p
    d2 = np.sum((s - m * np.eye(p)) ** 2) / p
    b2_bar = sum(np.sum((np.outer(row, row) - s) ** 2) / p for row in y) / t**2
    b2 = min(b2_bar, d2)
    shrinkage = b2 / d2
    return shrinkage * m * np.eye(p) + (1 - shrinkage) * s, shrinkage


@pytest.mark.parametrize(("t", "p"), [(40, 5), (30, 60), (250, 20)])
def test_ledoit_wolf_matches_the_paper(t: int, p: int) -> None:
    rng = np.random.default_rng(t + p)
    factor = rng.normal(size=(t, 1))
    x = 0.01 * (factor @ rng.uniform(0.5, 1.5, (1, p)) + rng.normal(size=(t, p)) * rng.uniform(0.5, 2, p))
    cov, shrinkage = ledoit_wolf_covariance(x)
    expected_cov, expected_shrinkage = _ledoit_wolf_by_hand(x)
    assert shrinkage == pytest.approx(expected_shrinkage, rel=1e-10)
    np.testing.assert_allclose(cov, expected_cov, rtol=1e-10, atol=1e-16)


def test_shrunk_covariance_is_positive_definite_with_fewer_days_than_symbols() -> None:
    x = np.random.default_rng(0).normal(0, 0.01, (50, 200))
    cov, shrinkage = ledoit_wolf_covariance(x)
    assert 0 < shrinkage <= 1
    assert np.linalg.eigvalsh(cov).min() > 0
    assert np.linalg.eigvalsh(np.cov(x.T, bias=True)).min() < 1e-12  # the sample covariance is singular


def test_portfolio_vol() -> None:
    cov = np.array([[0.04, 0.006], [0.006, 0.01]])
    w = np.array([1.0, -2.0])
    assert portfolio_vol(cov, w) == pytest.approx(np.sqrt(0.04 - 4 * 0.006 + 4 * 0.01))


def test_bad_inputs_raise() -> None:
    with pytest.raises(RiskError):
        ledoit_wolf_covariance(np.ones((1, 3)))
    with pytest.raises(RiskError):
        ledoit_wolf_covariance(np.array([[np.nan, 1.0], [1.0, 2.0]]))
