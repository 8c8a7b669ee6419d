"""The backtest's variants: MEM with everything on, the static system it replaces, and one ablation per component,
each a set of configs and signal options the walk-forward replay runs through the same decision kernel.

``static`` is the system MEM replaces: a logistic model refitted on a FIFO memory of the newest
``backtest.static.memory_rows`` labelled rows (no walk-forward selection, no calibration, no ensemble), fixed
confidence thresholds (``|p_up - 0.5| > min_edge``), a fixed notional per symbol (``risk.max_symbol_exposure``
of a ``reference_equity`` account) under the fixed 750 / 3,000 caps (no net cap), no regime multiplier, no CVaR
budget, no drawdown kill switch and every order sent whole at the open. It rounds to lots as MEM does (toward
zero, then whole lots handed back while the caps hold): 3,000 spread over 500 names would otherwise round to
nothing, which would measure the rounding, not the system.

The ablations change one thing each: ``no_regime`` (every regime multiplier 1), ``no_calibration`` (the raw
LightGBM probability where the calibrated one goes), ``no_kelly`` (fixed fraction sizing), ``no_cvar`` (no CVaR
budget), ``memory_weighting`` (training rows weighted by the decision memory's replay priorities),
``no_cost_aware_schedule`` (orders sent whole instead of in the schedule's slices) and ``no_thompson`` (the
selected candidate without the Thompson-weighted ensemble). ``oracle`` decides with the synthetic market's true
regime and true conditional return distribution; ``buy_and_hold`` is not a kernel variant (``baselines``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from mem_pipeline.backtest.simulator import BacktestError
from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.decisions.config import DecisionConfig
from mem_pipeline.risk.config import RiskConfig

MEM = "mem"
STATIC = "static"
BUY_AND_HOLD = "buy_and_hold"
ORACLE = "oracle"
ABLATIONS = (
    "no_regime",
    "no_calibration",
    "no_kelly",
    "no_cvar",
    "memory_weighting",
    "no_cost_aware_schedule",
    "no_thompson",
)
#: Every variant, in the order reports list them.
VARIANTS = (MEM, STATIC, BUY_AND_HOLD, ORACLE, *ABLATIONS)
NO_KILL_SWITCH = 0.999  # a drawdown that never happens before the account is gone
NO_CVAR_BUDGET = 1e6  # a one-day CVaR of a million times equity: the budget never binds
NO_NET_CAP = 1e12  # the static system capped per symbol and gross only


@dataclass(frozen=True)
class StaticConfig(ParamsConfig):
    """``backtest.static`` in params.yaml: the static system's own settings (its caps are ``risk``'s)."""

    SECTION: ClassVar[str] = "backtest.static"
    ERROR: ClassVar[type[Exception]] = BacktestError

    memory_rows: int = 1000  # the FIFO memory: the newest labelled rows the model is refitted on
    min_edge: float = 0.02  # the fixed confidence threshold: trade only when |p_up - 0.5| exceeds it

    def __post_init__(self) -> None:
        if self.memory_rows < 50:
            raise BacktestError(f"backtest.static.memory_rows must be >= 50, got {self.memory_rows}")
        if not 0 <= self.min_edge < 0.5:
            raise BacktestError(f"backtest.static.min_edge must be in [0, 0.5), got {self.min_edge}")


@dataclass(frozen=True)
class Variant:
    """What one variant decides with: risk and decision configs plus how its signal is fitted and read."""

    name: str
    risk: RiskConfig = field(default_factory=RiskConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    calibrated: bool = True  # False: the raw LightGBM probability
    ensemble: bool = True  # False: no Thompson-weighted strategy ensemble
    use_memory: bool = False  # weight training rows by the decision memory's priorities
    memory_rows: int | None = None  # a FIFO logistic model on the newest rows (static)
    sliced: bool = True  # False: each order whole at the open
    oracle: bool = False  # true regimes and true alpha (synthetic market only)


def kernel_variant(
    name: str,
    risk: RiskConfig | None = None,
    decision: DecisionConfig | None = None,
    static: StaticConfig | None = None,
) -> Variant:
    """The variant ``name`` built on the given (params.yaml) configs."""
    risk, decision, static = risk or RiskConfig(), decision or DecisionConfig(), static or StaticConfig()
    no_regime = tuple(1.0 for _ in risk.regime_multipliers)
    fixed = risk.max_symbol_exposure / risk.reference_equity
    base = Variant(name, risk, decision)
    if name == MEM:
        return base
    if name == STATIC:
        static_risk = risk.replace(
            sizing="fixed",
            fixed_fraction=fixed,
            min_edge=static.min_edge,
            regime_multipliers=no_regime,
            cvar_budget=NO_CVAR_BUDGET,
            max_net_exposure=NO_NET_CAP,
            kill_drawdown=NO_KILL_SWITCH,
        )
        return Variant(name, static_risk, decision, False, False, False, static.memory_rows, False)
    if name == ORACLE:
        return dataclasses.replace(base, oracle=True)
    changes = {
        "no_regime": {"risk": risk.replace(regime_multipliers=no_regime)},
        "no_calibration": {"calibrated": False},
        "no_kelly": {"risk": risk.replace(sizing="fixed", fixed_fraction=fixed)},
        "no_cvar": {"risk": risk.replace(cvar_budget=NO_CVAR_BUDGET)},
        "memory_weighting": {"use_memory": True},
        "no_cost_aware_schedule": {"sliced": False},
        "no_thompson": {"ensemble": False},
    }
    if name == BUY_AND_HOLD:
        raise BacktestError("buy_and_hold is a baseline, not a kernel variant (mem_pipeline.backtest.baselines)")
    if name not in changes:
        raise BacktestError(f"unknown backtest variant {name!r}; the kernel variants are {list(VARIANTS)}")
    return dataclasses.replace(base, **changes[name])  # type: ignore[arg-type]
