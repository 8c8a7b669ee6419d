"""Kelly against the closed form and against a numerical maximisation of expected log growth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from mem_pipeline.risk import RiskError, kelly_fraction, kelly_notional


def _growth_optimal_stake(p: float, b: float) -> float:
    """argmax over f in [0, 1) of p log(1 + b f) + (1 - p) log(1 - f), numerically."""
    result = minimize_scalar(
        lambda f: -(p * np.log1p(b * f) + (1 - p) * np.log1p(-f)),
        bounds=(0.0, 1 - 1e-12),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return float(result.x) if -result.fun > 1e-15 else 0.0


@pytest.mark.parametrize(
    ("p", "b", "expected"),
    [(0.6, 1.0, 0.2), (0.55, 2.0, 0.325), (0.5, 1.0, 0.0), (0.4, 1.0, -0.2), (0.3, 0.5, -(0.7 - 0.3 * 0.5))],
)
def test_kelly_matches_the_closed_form(p: float, b: float, expected: float) -> None:
    assert float(kelly_fraction(p, b)) == pytest.approx(expected, abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(p=st.floats(0.02, 0.98), b=st.floats(0.2, 5.0))
def test_kelly_maximises_expected_log_growth_on_both_sides(p: float, b: float) -> None:
    f = float(kelly_fraction(p, b))
    long = _growth_optimal_stake(p, b)
    short = _growth_optimal_stake(1 - p, 1 / b)  # the mirror bet: wins 1/b per unit when the price falls
    assert long == 0.0 or short == 0.0
    assert f == pytest.approx(long - short, abs=2e-6)


def test_fractional_kelly_never_sizes_without_edge() -> None:
    p = np.array([0.5, 0.5, 0.45, 0.6])
    b = np.array([1.0, 1.0, 1.2, 0.6])  # 0.45 * 2.2 < 1 -> short edge 0.55 - 0.54; 0.6 * 1.6 < 1 -> no long
    out = kelly_notional(p, b, equity=10_000, fraction=0.25)
    assert out[0] == out[1] == 0.0
    assert out[2] == pytest.approx(-0.25 * (0.55 - 0.45 * 1.2) * 10_000)
    assert out[3] == pytest.approx(-0.25 * (0.4 - 0.6 * 0.6) * 10_000)  # short: 0.4 - 0.36 > 0


def test_kelly_refuses_bad_probabilities_and_payoffs() -> None:
    with pytest.raises(RiskError):
        kelly_fraction(1.2, 1.0)
    with pytest.raises(RiskError):
        kelly_fraction(0.5, 0.0)
    with pytest.raises(RiskError):
        kelly_fraction(float("nan"), 1.0)
