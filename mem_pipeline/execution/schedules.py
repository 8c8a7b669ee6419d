"""Child-order schedules: how a parent's quantity is split into slices over the execution horizon.

* ``twap`` — equal slices.
* ``vwap`` — slices in proportion to an intraday volume profile; the default is U-shaped
  (``w(u) ∝ 1 + 2 (2u - 1)^2`` at slice midpoints ``u``: the first and last slices trade 3x the midday
  one, the usual open/close volume pattern of equity and most crypto sessions).
* ``almgren_chriss`` — the optimal liquidation trajectory of Almgren & Chriss (2000) with linear temporary
  impact: holdings ``x_j = X sinh(kappa (T - t_j)) / sinh(kappa T)`` at ``t_j = j tau``, ``tau = T/N``, where
  ``kappa`` solves the discrete condition ``2 (cosh(kappa tau) - 1) / tau^2 = lambda sigma^2 / eta``
  (``-> sqrt(lambda sigma^2 / eta)`` as ``tau -> 0``). Slice ``j`` trades ``x_{j-1} - x_j``; ``kappa -> 0`` is TWAP.
  The ratio is evaluated as ``e^{-kappa t_j} (1 - e^{-2 kappa (T - t_j)}) / (1 - e^{-2 kappa T})`` (the same
  algebra), which never overflows: at very high risk aversion nearly everything trades in the first slice.
  Only ``lambda sigma^2 / eta`` matters: ``sigma`` is the daily vol (fraction), ``eta`` the temporary impact
  per unit of trading rate in the same units, the horizon ``T`` one day.

Slices are whole lots: the ideal (real-valued) lot counts are rounded by the largest-remainder method, so
the lots add up exactly to the parent's; slices of zero lots are dropped but keep their index (the
client order id is per slice index). Expected cost per slice comes from a cost callable (the slippage
model's ``predict``), so this module never loads a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import polars as pl
from numpy.typing import NDArray

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.orders import Order, Schedule
from mem_pipeline.execution.errors import ExecutionError
from mem_pipeline.execution.ids import client_order_id
from mem_pipeline.execution.orders import ChildOrder

FloatArray = NDArray[np.float64]
#: ``cost_model(features) -> expected cost in bps per row``: a frame with the slippage model's FEATURES in,
#: a frame with ``expected_cost_bps`` (``FittedSlippage.predict``) or a sequence of floats out.
CostModel = Callable[[pl.DataFrame], Any]


@dataclass(frozen=True)
class ScheduleConfig(ParamsConfig):
    """``execution.schedule`` in params.yaml."""

    SECTION: ClassVar[str] = "execution.schedule"
    ERROR: ClassVar[type[Exception]] = ExecutionError

    n_slices: int = 5  # used when an order row does not set n_slices
    risk_aversion: float = 1.0  # Almgren–Chriss lambda
    eta: float = 4e-4  # temporary impact; lambda sigma^2 / eta = 1 at sigma = 2%: mildly front-loaded
    sigma: float = 0.02  # daily vol used when no market statistics are given for a symbol

    def __post_init__(self) -> None:
        if self.n_slices < 1:
            raise ExecutionError(f"execution.schedule.n_slices must be >= 1, got {self.n_slices}")
        if not _valid_ac_inputs(self.risk_aversion, self.sigma, self.eta):
            raise ExecutionError(
                "execution.schedule needs finite risk_aversion >= 0, eta > 0 and sigma >= 0, got "
                f"risk_aversion={self.risk_aversion}, eta={self.eta}, sigma={self.sigma}"
            )


@dataclass(frozen=True)
class MarketStats:
    """Pre-trade market state of one symbol: average daily volume (units), daily vol (fraction), spread (bps)."""

    adv: float
    sigma: float
    spread_bps: float


def _valid_ac_inputs(risk_aversion: float, sigma: float, eta: float) -> bool:
    """Finite ``risk_aversion >= 0``, ``sigma >= 0`` and ``eta > 0`` (NaN fails every comparison)."""
    finite = all(math.isfinite(v) for v in (risk_aversion, sigma, eta))
    return finite and risk_aversion >= 0 and sigma >= 0 and eta > 0


def u_shaped_profile(n_slices: int) -> FloatArray:
    """Default intraday volume share per slice: ``1 + 2 (2u - 1)^2`` at slice midpoints, normalised."""
    u = (np.arange(n_slices) + 0.5) / n_slices
    w = 1.0 + 2.0 * (2.0 * u - 1.0) ** 2
    return w / w.sum()


def ac_kappa(risk_aversion: float, sigma: float, eta: float, n_slices: int, horizon: float = 1.0) -> float:
    """Almgren–Chriss ``kappa`` solving ``2 (cosh(kappa tau) - 1) / tau^2 = lambda sigma^2 / eta``."""
    tau = horizon / n_slices
    kappa_tilde_sq = risk_aversion * sigma**2 / eta
    return math.acosh(1.0 + 0.5 * kappa_tilde_sq * tau**2) / tau


def ac_trajectory(total: float, kappa: float, n_slices: int, horizon: float = 1.0) -> FloatArray:
    """Holdings ``x_0 = total, ..., x_N = 0`` of the Almgren–Chriss optimal trajectory (linear as kappa -> 0).

    ``sinh(kappa (T - t)) / sinh(kappa T)`` is evaluated as ``e^{-kappa t} expm1(-2 kappa (T - t)) /
    expm1(-2 kappa T)``: no overflow at any ``kappa T`` and full precision as ``kappa -> 0``. ``kappa = inf``
    (an overflowed ``kappa``) is the limit: everything at once.
    """
    if math.isnan(kappa) or kappa < 0:
        raise ExecutionError(f"almgren_chriss kappa must be a number >= 0, got {kappa}")
    t = np.linspace(0.0, horizon, n_slices + 1)
    if kappa * horizon < 1e-8:
        return total * (1.0 - t / horizon)
    if math.isinf(kappa):
        return np.where(t == 0.0, total, 0.0)
    return total * np.exp(-kappa * t) * np.expm1(-2.0 * kappa * (horizon - t)) / math.expm1(-2.0 * kappa * horizon)


def schedule_weights(
    schedule: str,
    n_slices: int,
    *,
    profile: Sequence[float] | None = None,
    risk_aversion: float = 1.0,
    sigma: float = 0.02,
    eta: float = 4e-4,
) -> FloatArray:
    """Share of the parent per slice (non-negative, sums to 1)."""
    if n_slices < 1:
        raise ExecutionError(f"n_slices must be >= 1, got {n_slices}")
    if schedule == "twap":
        return np.full(n_slices, 1.0 / n_slices)
    if schedule == "vwap":
        if profile is None:
            return u_shaped_profile(n_slices)
        w = np.asarray(profile, dtype=float)
        if w.shape != (n_slices,) or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ExecutionError(f"vwap profile must be {n_slices} non-negative numbers with a positive sum, got {w}")
        return w / w.sum()
    if schedule == "almgren_chriss":
        if not _valid_ac_inputs(risk_aversion, sigma, eta):
            raise ExecutionError(
                "almgren_chriss needs finite risk_aversion >= 0, sigma >= 0 and eta > 0, got "
                f"risk_aversion={risk_aversion}, sigma={sigma}, eta={eta}"
            )
        kappa = ac_kappa(risk_aversion, sigma, eta, n_slices)
        weights = 0.0 - np.diff(ac_trajectory(1.0, kappa, n_slices))  # 0.0 - : no negative zeros
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ExecutionError(
                f"almgren_chriss weights are not finite and non-negative ({weights}; kappa={kappa}, "
                f"risk_aversion={risk_aversion}, sigma={sigma}, eta={eta})"
            )
        return weights
    raise ExecutionError(f"schedule must be one of {[s.value for s in Schedule]}, got {schedule!r}")


def round_to_lots(weights: FloatArray, total_lots: int) -> list[int]:
    """Integer lots per slice close to ``weights * total_lots`` whose sum is exactly ``total_lots``
    (largest remainder; ties go to the earlier slice). Non-finite or negative weights raise ``ExecutionError``."""
    w = np.asarray(weights, dtype=float)
    if not np.isfinite(w).all() or (w < 0).any():
        raise ExecutionError(f"slice weights must be finite and non-negative, got {w}")
    ideal = w * total_lots
    lots = np.floor(ideal + 1e-9).astype(np.int64)
    short = total_lots - int(lots.sum())
    if short > 0:
        order = sorted(range(len(ideal)), key=lambda j: (-(ideal[j] - lots[j]), j))
        for j in order[:short]:
            lots[j] += 1
    return [int(v) for v in lots]


def _costs(
    cost_model: CostModel | None, parent: Order, qty: list[float], shares: FloatArray, stats: MarketStats | None
) -> list[float | None]:
    if cost_model is None or stats is None or not qty:
        same = parent.expected_cost_bps if math.isfinite(parent.expected_cost_bps) else None
        return [same] * len(qty)
    q = np.asarray(qty)
    features = pl.DataFrame(
        {
            "size_over_adv": q / stats.adv,
            "spread_bps": np.full(len(q), stats.spread_bps),
            "sigma": np.full(len(q), stats.sigma),
            "participation": q / np.maximum(stats.adv * shares, 1e-12),
            "side": np.full(len(q), float(parent.side.sign)),
        }
    )
    out = cost_model(features)
    values = out["expected_cost_bps"].to_list() if isinstance(out, pl.DataFrame) else list(out)
    return [float(v) for v in values]


def plan_children(
    parent: Order,
    config: ScheduleConfig = ScheduleConfig(),
    *,
    profile: Sequence[float] | None = None,
    stats: MarketStats | None = None,
    cost_model: CostModel | None = None,
) -> list[ChildOrder]:
    """The child orders of ``parent``: its schedule's slices in whole lots, each with its client id and
    expected cost (``cost_model`` on the slice's features when ``stats`` are known, else the parent's)."""
    n = parent.n_slices or config.n_slices
    sigma = stats.sigma if stats is not None else config.sigma
    weights = schedule_weights(
        parent.schedule, n, profile=profile, risk_aversion=config.risk_aversion, sigma=sigma, eta=config.eta
    )
    total_lots = int(round(parent.quantity / parent.lot_size))
    lots = round_to_lots(weights, total_lots)
    kept = [j for j in range(n) if lots[j] > 0]
    qty = [lots[j] * parent.lot_size for j in kept]
    shares = weights[kept] if kept else np.empty(0)
    costs = _costs(cost_model, parent, qty, shares, stats)
    return [
        ChildOrder(
            client_id=client_order_id(parent.decision_version, parent.symbol, j),
            parent_id=parent.parent_id,
            slice_index=j,
            symbol=parent.symbol,
            side=parent.side,
            quantity=q,
            reference_price=parent.reference_price,
            decision_date=parent.decision_date,
            expected_cost_bps=c,
        )
        for j, q, c in zip(kept, qty, costs, strict=True)
    ]
