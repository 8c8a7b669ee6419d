"""Regime multiplier (continuous, monotone, bounded) and the drawdown kill switch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mem_pipeline.risk import DrawdownState, RiskConfig, RiskError, increases_risk, reduce_only, regime_multiplier


def test_regime_multiplier_is_the_probability_weighted_mean() -> None:
    assert regime_multiplier([1.0, 0.0], [1.0, 0.5]) == 1.0
    assert regime_multiplier([0.0, 1.0], [1.0, 0.5]) == 0.5
    assert regime_multiplier([0.3, 0.7], [1.0, 0.5]) == pytest.approx(0.65)
    assert regime_multiplier([0.2, 0.3, 0.5], [1.0, 0.6, 0.2]) == pytest.approx(0.2 + 0.18 + 0.1)


@settings(max_examples=100, deadline=None)
@given(p=st.floats(0, 1), h=st.floats(1e-6, 1e-3))
def test_regime_multiplier_is_continuous_and_falls_as_the_volatile_regime_grows(p: float, h: float) -> None:
    m = (1.0, 0.5)
    here = regime_multiplier([1 - p, p], m)
    q = min(p + h, 1.0)
    there = regime_multiplier([1 - q, q], m)
    assert 0.5 <= here <= 1.0
    assert there <= here + 1e-15  # monotone
    assert abs(there - here) <= 0.5 * (q - p) + 1e-12  # Lipschitz: no jump at 0.5


def test_regime_multiplier_stays_within_the_multipliers_when_probabilities_sum_a_hair_over_one() -> None:
    p = [0.07, 0.9300000000000002]  # sums to 1.0000000000000002 in floating point, as a filter's output can
    assert sum(p) > 1
    assert regime_multiplier(p, [1.0, 1.0]) == 1.0  # no more than the largest multiplier: a valid Kelly input
    assert regime_multiplier(p, [1.0, 0.5]) == pytest.approx(0.535)


def test_regime_multiplier_refuses_mismatches() -> None:
    with pytest.raises(RiskError, match="one per regime"):
        regime_multiplier([0.5, 0.3, 0.2], [1.0, 0.5])
    with pytest.raises(RiskError, match="sum to 1"):
        regime_multiplier([0.5, 0.6], [1.0, 0.5])


def test_kill_switch_turns_on_at_the_threshold_from_the_running_peak() -> None:
    curve = [100.0, 120.0, 110.0, 108.1]
    state = DrawdownState.from_curve(curve, 0.10)
    assert state.peak == 120.0 and state.drawdown == pytest.approx(1 - 108.1 / 120)
    assert not state.kill_switch
    assert DrawdownState.from_curve([*curve, 108.0], 0.10).kill_switch  # exactly 10%
    assert not DrawdownState.from_curve([*curve, 125.0], 0.10).kill_switch  # new peak


def test_reduce_only_never_adds_size_nor_flips() -> None:
    current = np.array([10.0, 10.0, 10.0, -10.0, -10.0, 0.0, 0.0])
    target = np.array([5.0, 15.0, -5.0, -5.0, 3.0, 4.0, 0.0])
    np.testing.assert_array_equal(reduce_only(target, current), [5.0, 10.0, 0.0, -5.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(increases_risk(target, current), [False, True, True, False, True, True, False])
    assert not increases_risk(reduce_only(target, current), current).any()


def test_config_reads_params_and_refuses_bad_values() -> None:
    config = RiskConfig.from_params({"kelly_fraction": 0.5, "regime_multipliers": [1, 0.4, 0.1]})
    assert config.kelly_fraction == 0.5 and config.regime_multipliers == (1.0, 0.4, 0.1)
    assert RiskConfig.from_params(config.to_params()) == config
    with pytest.raises(RiskError, match="risk.kelly_fraction"):
        RiskConfig(kelly_fraction=0.0)
    with pytest.raises(RiskError, match="unknown keys"):
        RiskConfig.from_params({"kelly": 0.25})
    with pytest.raises(RiskError, match="cvar_method"):
        RiskConfig(cvar_method="parametric")
