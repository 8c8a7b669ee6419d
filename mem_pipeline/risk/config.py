"""Risk parameters (``risk`` in params.yaml) and the error every risk function raises."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.errors import MemError

CVAR_METHODS = ("fhs", "historical")
SIZINGS = ("kelly", "fixed")


class RiskError(MemError, ValueError):
    """Bad risk configuration or input (names the key or column and the rule broken)."""


@dataclass(frozen=True)
class RiskConfig(ParamsConfig):
    """What determines the risk limits and sizes of a decision (``risk`` in params shape).

    Exposures are in account currency for an account of ``reference_equity``; ``RiskLimits`` scales
    them by ``equity / reference_equity``, so a larger (or shrunken) account keeps the same proportions.
    ``account_equity`` is the equity used when no equity curve is given.
    """

    SECTION: ClassVar[str] = "risk"
    ERROR: ClassVar[type[Exception]] = RiskError

    sizing: str = "kelly"  # kelly | fixed (fixed_fraction of equity per symbol, the sign of the edge)
    kelly_fraction: float = 0.25
    fixed_fraction: float = 0.075  # the fixed sizing's notional per symbol, as a share of equity
    min_edge: float = 0.0  # |p_up - 0.5| at or below this: no new position (a confidence threshold)
    reference_equity: float = 10_000.0
    account_equity: float = 10_000.0
    max_symbol_exposure: float = 750.0
    max_gross_exposure: float = 3_000.0
    max_net_exposure: float = 1_500.0
    cvar_alpha: float = 0.975
    cvar_budget: float = 0.02  # one-day portfolio CVaR, as a fraction of equity
    cvar_method: str = "fhs"
    lookback_days: int = 250
    min_history: int = 60  # valid returns in the lookback a symbol needs before it gets new risk
    regime_multipliers: tuple[float, ...] = (1.0, 0.5)  # regime 0 = calm; one per regime
    kill_drawdown: float = 0.10
    lot_size: float = 1.0
    lot_top_up: bool = True  # after rounding toward zero, hand whole lots back while every limit holds

    def __post_init__(self) -> None:
        if self.sizing not in SIZINGS:
            _fail("sizing", f"must be one of {list(SIZINGS)}, got {self.sizing!r}")
        if not 0 < self.fixed_fraction <= 1:
            _fail("fixed_fraction", f"must be in (0, 1], got {self.fixed_fraction}")
        if not 0 <= self.min_edge < 0.5:
            _fail("min_edge", f"must be in [0, 0.5), got {self.min_edge}")
        if not 0 < self.kelly_fraction <= 1:
            _fail("kelly_fraction", f"must be in (0, 1], got {self.kelly_fraction}")
        for key in ("reference_equity", "account_equity", "max_symbol_exposure", "max_gross_exposure"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                _fail(key, f"must be a positive number, got {value}")
        if not (math.isfinite(self.max_net_exposure) and self.max_net_exposure >= 0):
            _fail("max_net_exposure", f"must be >= 0, got {self.max_net_exposure}")
        if not 0.5 <= self.cvar_alpha < 1:
            _fail("cvar_alpha", f"must be in [0.5, 1), got {self.cvar_alpha}")
        if not (math.isfinite(self.cvar_budget) and self.cvar_budget > 0):
            _fail("cvar_budget", f"must be a positive fraction of equity, got {self.cvar_budget}")
        if self.cvar_method not in CVAR_METHODS:
            _fail("cvar_method", f"must be one of {list(CVAR_METHODS)}, got {self.cvar_method!r}")
        if self.lookback_days < 20:
            _fail("lookback_days", f"must be >= 20, got {self.lookback_days}")
        if not 2 <= self.min_history <= self.lookback_days:
            _fail("min_history", f"must be in [2, lookback_days={self.lookback_days}], got {self.min_history}")
        if not self.regime_multipliers:
            _fail("regime_multipliers", "needs one multiplier per regime")
        if any(not (math.isfinite(m) and 0 <= m <= 1) for m in self.regime_multipliers):
            _fail("regime_multipliers", f"must each be in [0, 1], got {list(self.regime_multipliers)}")
        if not 0 < self.kill_drawdown < 1:
            _fail("kill_drawdown", f"must be in (0, 1), got {self.kill_drawdown}")
        if not (math.isfinite(self.lot_size) and self.lot_size > 0):
            _fail("lot_size", f"must be a positive number, got {self.lot_size}")

    def replace(self, **changes: Any) -> RiskConfig:
        return dataclasses.replace(self, **changes)


def _fail(key: str, detail: str) -> None:
    raise RiskError(f"risk.{key}: {detail}")
