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
7. lot top-up (``risk.lot_top_up``, on by default): rounding toward zero alone can leave a book of many
   small targets empty (500 symbols sharing a 3,000 gross cap get ~6 each, less than one share of most
   stocks). Whole lots are handed back, largest remainder first, each only if every limit above still
   holds — see ``_top_up``. The one step that moves a size away from zero: by one lot at most, never past
   its un-rounded target plus that lot.

Each symbol carries the name of the last step that reduced it (``binding``), the ``binding_limit`` of
its order; a symbol that was rounded to 0 and got a lot back by the top-up takes back the label that
bound its un-rounded target (it is that target, rounded up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from mem_pipeline.risk.config import RiskConfig, RiskError
from mem_pipeline.risk.drawdown import reduce_only
from mem_pipeline.risk.scenarios import IncrementalCVaR, RiskModel

FloatArray = NDArray[np.float64]
#: Relative slack when comparing against a limit (floating-point products of prices and units).
TOLERANCE = 1e-9
MAX_REPAIRS = 50
MAX_NET_PASSES = 20
#: Passes of the lot top-up: a lot refused by the net cap or the CVaR budget can fit once another symbol
#: (the other side, a hedge) has had its lot, so those are retried while a pass still hands out lots.
MAX_TOP_UP_PASSES = 4


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
    unrounded_notional: FloatArray  # the target after the caps and the budget, before lots
    cvar: float  # portfolio CVaR of the final book (RiskModel.cvar)
    cvar_before_limits: float  # of the raw (Kelly x regime) book
    repairs: int  # rounding repairs needed (net cap / budget after lots)
    top_up_lots: int = 0  # lots handed back by the top-up (one per symbol at most)
    top_up_refused: dict[str, int] = field(default_factory=dict)  # limit -> symbols refused their lot


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
            units[i] = side * (have - take) * lots[i]  # a whole number of lots, no float dust
            excess -= take * lot_value
            touched[i] = True


def _top_up(
    units: FloatArray,
    target: FloatArray,
    current_units: FloatArray,
    prices: FloatArray,
    lots: FloatArray,
    raw: FloatArray,
    eligible: NDArray[np.bool_],
    risk_model: RiskModel,
    limits: RiskLimits,
) -> tuple[NDArray[np.bool_], dict[str, int]]:
    """Largest-remainder top-up of the rounded book ``units`` (in place, within every limit).

    The remainder of a symbol is ``(target - units) / lot`` on the target's side: the part of its
    un-rounded target that rounding (or a repair) took away, in lots. Symbols are taken in order of
    decreasing remainder (ties: larger ``|raw|``, then symbol order), and each gets **one** lot on its
    target's side if, with that lot, the book still satisfies the symbol cap, the gross cap, the net cap
    (or does not move further from it), the CVaR budget (``RiskModel.cvar``, tracked incrementally) and,
    with the kill switch on, stays within its current position. A lot that does not fit is skipped and
    the next, smaller remainder is tried (a cheaper lot may still fit): remainders that are small
    relative to their lot — a tenth of a share of a $500 stock — come last, so they only get a lot when
    the budget is still unspent after every larger one. Refusals by the net cap or the budget are retried
    in another pass while lots are still being handed out (``MAX_TOP_UP_PASSES``); the others are final
    (the gross only grows, one lot per symbol). So a symbol ends below ``target + 1 lot`` and never on
    the other side: the top-up rounds up at most, it never invents exposure the sizing did not ask for.

    Returns which symbols got a lot and, per limit, how many eligible symbols it refused."""
    n = units.size
    side = np.sign(target)
    want = target / (prices * lots)
    remainder = (want - units / lots) * side
    eligible = eligible & (side != 0) & (remainder > 1e-9 * np.maximum(np.abs(want), 1.0)) & (units * side >= 0)
    given = np.zeros(n, dtype=bool)
    if not eligible.any():
        return given, {}
    # Rounded remainders so that equal ones (equal targets and prices) tie exactly and the tie-break decides.
    order = np.lexsort((np.arange(n), -np.abs(raw), -np.round(remainder, 12)))
    pending = [int(i) for i in order if eligible[i]]
    held_lots = np.round(units / lots).tolist()
    current_lots = np.round(current_units / lots).tolist()
    sides, lot_list, price_list = side.tolist(), lots.tolist(), prices.tolist()
    notional = units * prices
    gross, net = float(np.abs(notional).sum()), float(notional.sum())
    tracker = IncrementalCVaR(risk_model, notional)
    refused: dict[int, str] = {}
    for _ in range(MAX_TOP_UP_PASSES):
        retry: list[int] = []
        handed_out = 0
        for i in pending:
            s = sides[i]
            new_lots = held_lots[i] + s
            if limits.kill_switch and not (current_lots[i] * s >= new_lots * s > 0):
                refused[i] = "kill_switch"
                continue
            old_value = abs(held_lots[i] * lot_list[i] * price_list[i])
            new_units = new_lots * lot_list[i]
            new_value = abs(new_units * price_list[i])
            if new_value > limits.symbol_cap:
                refused[i] = "symbol_cap"
                continue
            new_gross = gross + (new_value - old_value)
            if new_gross > limits.gross_cap:
                refused[i] = "gross_cap"
                continue
            step = s * (new_value - old_value)
            new_net = net + step
            if abs(new_net) > limits.net_cap and abs(new_net) > abs(net):
                refused[i] = "net_cap"
                retry.append(i)
                continue
            if tracker.gaussian_cvar_after(i, step) > limits.cvar_budget or (
                tracker.cvar_after(i, step) > limits.cvar_budget
            ):
                refused[i] = "cvar_budget"
                retry.append(i)
                continue
            units[i] = new_units
            held_lots[i] = new_lots
            gross, net = new_gross, new_net
            tracker.move(i, step)
            given[i] = True
            handed_out += 1
            refused.pop(i, None)
        if not (retry and handed_out):
            break
        pending = retry
    counts: dict[str, int] = {}
    for reason in refused.values():
        counts[reason] = counts.get(reason, 0) + 1
    return given, dict(sorted(counts.items()))


def _within_limits(notional: FloatArray, risk: float, limits: RiskLimits) -> bool:
    if notional.size and float(np.abs(notional).max()) > limits.symbol_cap * (1 + TOLERANCE):
        return False
    return (
        _within(float(np.abs(notional).sum()), limits.gross_cap)
        and _within(abs(float(notional.sum())), limits.net_cap)
        and _within(risk, limits.cvar_budget)
    )


def constrain_book(
    raw_notional: FloatArray,
    current_units: FloatArray,
    prices: FloatArray,
    lots: FloatArray,
    risk_model: RiskModel,
    limits: RiskLimits,
    labels: Sequence[str] | NDArray[np.object_],
    top_up: bool = True,
) -> BookSizing:
    """Fit the raw book inside ``limits`` (see the module docstring). ``labels`` names what set each raw
    size (``kelly``, ``regime``, ``no_signal``, ...); current positions must be lot multiples. ``top_up``:
    hand whole lots back after rounding (``_top_up``), as long as every limit holds."""
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
    unrounded_binding = binding.copy()
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

    given, refused = np.zeros(units.shape, dtype=bool), {}
    if top_up and units.size:
        rounded, rounded_risk = units.copy(), risk
        given, refused = _top_up(units, target, current_units, prices, lots, raw, ~unchanged, risk_model, limits)
        if given.any():
            risk = risk_model.cvar(units * prices)
            # The running sums of the top-up only drift by rounding; the book is re-checked whole anyway.
            if not _within_limits(units * prices, risk, limits):
                units, risk, given, refused = rounded, rounded_risk, np.zeros(units.shape, dtype=bool), {}
        restored = given & (binding == "lot_size")
        binding[restored] = unrounded_binding[restored]
    return BookSizing(
        target_units=units,
        target_notional=units * prices,
        binding=binding,
        unrounded_notional=target,
        cvar=risk,
        cvar_before_limits=cvar_before,
        repairs=repairs,
        top_up_lots=int(given.sum()),
        top_up_refused=refused,
    )
