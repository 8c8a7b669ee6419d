"""Decision parameters (``decisions`` in params.yaml): how orders are scheduled and costed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.decisions.types import DecisionError


@dataclass(frozen=True)
class DecisionConfig(ParamsConfig):
    """Schedule rule thresholds, as order size over ADV (the participation if the order ran all day)."""

    SECTION: ClassVar[str] = "decisions"
    ERROR: ClassVar[type[Exception]] = DecisionError

    twap_max_participation: float = 0.01  # up to 1% of ADV: TWAP
    vwap_max_participation: float = 0.05  # up to 5%: VWAP; above: Almgren–Chriss
    max_child_participation: float = 0.0025  # n_slices = ceil(participation / this), in [1, max_slices]
    max_slices: int = 48
    min_sigma: float = 1e-4  # floor on the daily vol given to the cost model (it needs sigma > 0)

    def __post_init__(self) -> None:
        if not 0 < self.twap_max_participation <= self.vwap_max_participation:
            _fail("twap_max_participation", "needs 0 < twap_max_participation <= vwap_max_participation")
        if not (math.isfinite(self.vwap_max_participation) and self.vwap_max_participation > 0):
            _fail("vwap_max_participation", f"must be a positive number, got {self.vwap_max_participation}")
        if not (math.isfinite(self.max_child_participation) and self.max_child_participation > 0):
            _fail("max_child_participation", f"must be a positive number, got {self.max_child_participation}")
        if self.max_slices < 1:
            _fail("max_slices", f"must be >= 1, got {self.max_slices}")
        if not (math.isfinite(self.min_sigma) and self.min_sigma > 0):
            _fail("min_sigma", f"must be a positive number, got {self.min_sigma}")


def _fail(key: str, detail: str) -> None:
    raise DecisionError(f"decisions.{key}: {detail}")
