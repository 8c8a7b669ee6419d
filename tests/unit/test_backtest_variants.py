"""The backtest's variants: each ablation changes exactly the one thing it names against MEM, the static system
is what the issue describes, and the fixed sizing the static system and ``no_kelly`` use is worked by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mem_pipeline.backtest.simulator import BacktestError
from mem_pipeline.backtest.variants import ABLATIONS, MEM, STATIC, VARIANTS, StaticConfig, kernel_variant
from mem_pipeline.risk.config import RiskConfig, RiskError
from mem_pipeline.risk.kelly import kelly_notional, raw_notional


def _differences(name: str) -> dict[str, object]:
    mem, other = kernel_variant(MEM), kernel_variant(name)
    out = {}
    for field in dataclasses.fields(mem):
        a, b = getattr(mem, field.name), getattr(other, field.name)
        if field.name == "risk":
            out |= {f"risk.{k}": v for k, v in b.to_params().items() if a.to_params()[k] != v}
        elif field.name != "name" and a != b:
            out[field.name] = b
    return out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("no_regime", {"risk.regime_multipliers": [1.0, 1.0]}),
        ("no_calibration", {"calibrated": False}),
        ("no_kelly", {"risk.sizing": "fixed"}),  # at fixed_fraction = 750 / 10,000, the default
        ("no_cvar", {"risk.cvar_budget": 1e6}),
        ("memory_weighting", {"use_memory": True}),
        ("no_cost_aware_schedule", {"sliced": False}),
        ("no_thompson", {"ensemble": False}),
        ("oracle", {"oracle": True}),
    ],
)
def test_each_ablation_changes_only_what_it_names(name: str, expected: dict[str, object]) -> None:
    assert _differences(name) == expected


def test_every_ablation_is_a_variant_and_buy_and_hold_is_not_a_kernel_variant() -> None:
    assert set(ABLATIONS) < set(VARIANTS)
    with pytest.raises(BacktestError, match="buy_and_hold"):
        kernel_variant("buy_and_hold")


def test_the_static_system_is_fixed_thresholds_fixed_limits_fifo_memory_no_regime_no_calibration() -> None:
    static = kernel_variant(STATIC, static=StaticConfig(memory_rows=1000, min_edge=0.02))
    risk = static.risk
    assert (risk.sizing, risk.fixed_fraction, risk.min_edge) == ("fixed", 750 / 10_000, 0.02)
    assert (risk.max_symbol_exposure, risk.max_gross_exposure) == (750.0, 3_000.0)
    assert set(risk.regime_multipliers) == {1.0}
    assert risk.cvar_budget >= 1e6 and risk.kill_drawdown > 0.99
    assert static.memory_rows == 1000
    assert not (static.calibrated or static.ensemble or static.sliced or static.use_memory)


def test_fixed_sizing_by_hand_and_the_confidence_threshold() -> None:
    config = RiskConfig(sizing="fixed", fixed_fraction=0.075, min_edge=0.02)
    p = np.array([0.53, 0.47, 0.515, 0.5, 0.9])
    out = raw_notional(p, np.ones(5), 20_000.0, config, multiplier=0.5)
    # 7.5% of 20,000 = 1,500, halved by the regime multiplier; |p - 0.5| <= 0.02 trades nothing.
    assert out.tolist() == [750.0, -750.0, 0.0, 0.0, 750.0]


def test_kelly_sizing_with_a_threshold_keeps_kelly_above_it() -> None:
    config = RiskConfig(min_edge=0.05)
    p, b = np.array([0.52, 0.6, 0.3]), np.array([1.0, 1.0, 1.5])
    expected = kelly_notional(p, b, 10_000.0, 0.25) * np.array([0.0, 1.0, 1.0])
    assert raw_notional(p, b, 10_000.0, config) == pytest.approx(expected)
    assert raw_notional(p, b, 10_000.0, RiskConfig()) == pytest.approx(kelly_notional(p, b, 10_000.0, 0.25))


@pytest.mark.parametrize(
    ("changes", "key"),
    [({"sizing": "equal"}, "risk.sizing"), ({"fixed_fraction": 0.0}, "risk.fixed_fraction"),
     ({"min_edge": 0.5}, "risk.min_edge")],
)  # fmt: skip
def test_bad_sizing_settings_name_the_key(changes: dict[str, object], key: str) -> None:
    with pytest.raises(RiskError, match=key):
        RiskConfig(**changes)


def test_bad_static_settings_name_the_key() -> None:
    with pytest.raises(BacktestError, match="backtest.static.memory_rows"):
        StaticConfig(memory_rows=10)
