"""Risk limits of one decision and the sizing step that fits a book inside them.

``constrain_book`` turns raw (Kelly × regime) target notionals into lot-sized target positions, applying
in order — each step only moves a target toward zero, on its own side, so no step can undo an
earlier one:

1. kill switch (reduce-only against the current position),
2. per-symbol cap (``|notional| <= symbol_cap``),
3. net cap: the dominant side is scaled so that ``|sum notional| <= net_cap``,
4. gross cap: the whole book is scaled so that ``sum |notional| <= gross_cap``,
5. CVaR budget: the book is scaled by ``budget / CVaR(book)`` (CVaR is positively homogeneous),
6. lots: target units are rounded toward zero; this can move the net exposure (longs and shorts
   round by different amounts) and, because CVaR is not monotone in single positions (dropping part of
   a hedge adds risk), the net cap and the budget are re-checked on the rounded book and restored by
   removing lots / rescaling; if that does not converge the book goes flat, which satisfies every limit.

Each symbol carries the name of the last step that reduced it (``binding``), the ``binding_limit`` of
its order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mem_pipeline.risk.config import RiskConfig, RiskError
from mem_pipeline.risk.drawdown import reduce_only
from mem_pipeline.risk.scenarios import RiskModel

FloatArray = NDArray[np.float64]
#: Relative slack when comparing against a limit (floating-point products of prices and units).
TOLERANCE = 1e-9
MAX_REPAIRS = 50
MAX_NET_PASSES = 20


@dataclass(frozen=True)
class RiskLimits:
    """The limits in force for one decision, in account currency (already scaled to the equity)."""

    equity: float
    scale: float  # equity / reference_equity
    symbol_cap: float
    gross_cap: float
    net_cap: float
    cvar_budget: float  # one-day CVaR at cvar_alpha, currency
    cvar_alpha: float
    kill_switch: bool

    @classmethod
    def for_equity(cls, config: RiskConfig, equity: float, kill_switch: bool = False) -> RiskLimits:
        if not (np.isfinite(equity) and equity > 0):
            raise RiskError(f"limits: equity must be a positive number, got {equity}")
        scale = equity / config.reference_equity
        return cls(
            equity=float(equity),
            scale=scale,
            symbol_cap=config.max_symbol_exposure * scale,
            gross_cap=config.max_gross_exposure * scale,
            net_cap=config.max_net_exposure * scale,
            cvar_budget=config.cvar_budget * equity,
            cvar_alpha=config.cvar_alpha,
            kill_switch=kill_switch,
        )

    def to_dict(self) -> dict[str, float | bool]:
        return {
            "equity": self.equity,
            "scale": self.scale,
            "symbol_cap": self.symbol_cap,
            "gross_cap": self.gross_cap,
            "net_cap": self.net_cap,
            "cvar_budget": self.cvar_budget,
            "cvar_alpha": self.cvar_alpha,
            "kill_switch": self.kill_switch,
        }


@dataclass(frozen=True, eq=False)
class BookSizing:
    target_units: FloatArray  # signed, lot multiples
    target_notional: FloatArray  # target_units * price
    binding: NDArray[np.object_]  # per symbol, the step that set the size
    cvar: float  # portfolio CVaR of the final book (RiskModel.cvar)
    cvar_before_limits: float  # of the raw (Kelly x regime) book
    repairs: int  # rounding repairs needed (net cap / budget after lots)


def _within(value: float, cap: float) -> bool:
    return value <= cap * (1 + TOLERANCE) + TOLERANCE


def _round_to_lots(notional: FloatArray, prices: FloatArray, lots: FloatArray) -> FloatArray:
    return np.trunc(notional / (prices * lots)) * lots


def _repair_net(units: FloatArray, prices: FloatArray, lots: FloatArray, cap: float) -> NDArray[np.bool_]:
    """Remove whole lots from the dominant side (largest positions first) until ``|net| <= cap``; in place.

    Whole lots can overshoot onto the other side; then that side is trimmed in turn. Lots of unequal
    value can make that alternate for long (a net cap of 0 needs exact cancellation), so after
    ``MAX_NET_PASSES`` passes the dominant side is closed outright: this ends, at worst with a flat book."""
    touched = np.zeros(units.shape, dtype=bool)
    passes = 0
    while True:
        net = float(units @ prices)
        if _within(abs(net), cap):
            return touched
        side = np.sign(net)
        excess = abs(net) - cap
        notional = units * prices * side
        passes += 1
        if passes > MAX_NET_PASSES:
            dominant = notional > 0
            units[dominant] = 0.0
            touched |= dominant
            continue
        for i in np.argsort(-notional, kind="stable"):
            if excess <= 0 or notional[i] <= 0:
                break
            lot_value = lots[i] * prices[i]
            have = round(abs(units[i]) / lots[i])
            take = max(min(int(np.ceil(excess / lot_value - 1e-12)), have), 1)
            units[i] -= side * take * lots[i]
            excess -= take * lot_value
            touched[i] = True


def constrain_book(
    raw_notional: FloatArray,
    current_units: FloatArray,
    prices: FloatArray,
    lots: FloatArray,
    risk_model: RiskModel,
    limits: RiskLimits,
    labels: Sequence[str] | NDArray[np.object_],
) -> BookSizing:
    """Fit the raw book inside ``limits`` (see the module docstring). ``labels`` names what set each raw
    size (``kelly``, ``regime``, ``no_signal``, ...); current positions must be lot multiples."""
    raw = np.asarray(raw_notional, dtype=np.float64)
    current_units = np.asarray(current_units, dtype=np.float64)
    prices = np.asarray(prices, dtype=np.float64)
    lots = np.asarray(lots, dtype=np.float64)
    binding = np.array(labels, dtype=object)
    if not (raw.shape == current_units.shape == prices.shape == lots.shape == binding.shape):
        raise RiskError("constrain_book: inputs must have one value per symbol")
    if not np.isfinite(raw).all():
        raise RiskError("constrain_book: raw target notionals must be finite")
    if (prices <= 0).any() or not np.isfinite(prices).all() or (lots <= 0).any():
        raise RiskError("constrain_book: prices and lot sizes must be finite and > 0")
    current = current_units * prices
    target = raw.copy()
    cvar_before = risk_model.cvar(raw)

    if limits.kill_switch:
        clipped = reduce_only(target, current)
        binding[clipped != target] = "kill_switch"
        target = clipped

    over = np.abs(target) > limits.symbol_cap
    target = np.where(over, np.sign(target) * limits.symbol_cap, target)
    binding[over] = "symbol_cap"

    net = float(target.sum())
    if abs(net) > limits.net_cap:
        dominant = target * np.sign(net) > 0
        dominant_sum = float(np.abs(target[dominant]).sum())
        other_sum = float(np.abs(target[~dominant]).sum())
        factor = (limits.net_cap + other_sum) / dominant_sum
        target = np.where(dominant, target * factor, target)
        binding[dominant] = "net_cap"

    gross = float(np.abs(target).sum())
    if gross > limits.gross_cap:
        target = target * (limits.gross_cap / gross)
        binding[target != 0] = "gross_cap"

    risk = risk_model.cvar(target)
    if risk > limits.cvar_budget:
        target = target * (limits.cvar_budget / risk)
        binding[target != 0] = "cvar_budget"

    # Lots: toward zero; a target still equal to the current position keeps it exactly (no dust orders).
    unchanged = target == current
    units = np.where(unchanged, current_units, _round_to_lots(target, prices, lots))
    above = np.abs(units * prices) > limits.symbol_cap  # float products at the cap
    units = np.where(above, units - np.sign(units) * lots, units)
    binding[(target != 0) & (units == 0)] = "lot_size"

    repairs = 0
    while True:
        touched = _repair_net(units, prices, lots, limits.net_cap)
        binding[touched] = "net_cap"
        repairs += int(touched.any())
        risk = risk_model.cvar(units * prices)
        if _within(risk, limits.cvar_budget):
            break
        repairs += 1
        if repairs > MAX_REPAIRS:
            units = np.zeros_like(units)
            binding[current_units != 0] = "cvar_budget"
            risk = 0.0
            break
        shrunk = units * prices * (limits.cvar_budget / risk) * (1 - 1e-6)
        units = _round_to_lots(shrunk, prices, lots)
        binding[shrunk != 0] = "cvar_budget"
    return BookSizing(units, units * prices, binding, risk, cvar_before, repairs)
