"""Pre-trade gate between decisions and the broker (the role of nautilus_trader's RiskEngine).

Checks, in order: kill switch, max order notional, price band (the order's reference price against the
last traded price: a fat-finger guard), per-symbol position limit and gross exposure limit, both in
notional at the last price after every working order and this one complete; in ``reduce_only`` mode an
order that would grow a position or flip it past zero is refused. A rejection names the limit,
the amount and the threshold.

One source for each limit: the day's stored ``RiskLimits`` (scaled with equity) set the per-symbol cap, the
per-order cap (twice the symbol cap: the largest order within it turns a full short into a full long) and the
gross cap; ``execution.gate`` only adds an operator's hard ceiling on top (``.inf``: none). One kill switch path:
the risk module's drawdown switch (``RiskLimits.kill_switch``) makes the gate reduce-only; the operator's switch
(``execution.gate.kill_switch``, or ``engage_kill_switch``) stops everything. ``GateLimits`` shows both, with
where each limit came from.

Not bypassable: the engine sends only children of an ``ApprovedOrder``, and an ``ApprovedOrder`` can only
be built by ``PreTradeGate`` (its constructor demands a token private to this module). The kill switch is
checked again before every single send, so engaging it stops orders already planned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.orders import Order
from mem_pipeline.execution.errors import ExecutionError
from mem_pipeline.risk.limits import RiskLimits

_TOKEN = object()


INF = float("inf")
#: Relative slack when comparing with a limit: risk sizes a book exactly up to its caps, and the gate recomputes
#: the same products of units and prices.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class GateConfig(ParamsConfig):
    """``execution.gate`` in params.yaml: the operator's hard ceilings (quote currency; ``inf``: none beyond the
    day's limits), the price band and the operator's emergency stop."""

    SECTION: ClassVar[str] = "execution.gate"
    ERROR: ClassVar[type[Exception]] = ExecutionError

    max_order_notional: float = INF
    price_band: float = 0.05  # |reference / last - 1| allowed
    max_position_notional: float = INF
    max_gross_exposure: float = INF
    kill_switch: bool = False  # nothing is sent at all (an operator's emergency stop)

    def __post_init__(self) -> None:
        for name in ("max_order_notional", "price_band", "max_position_notional", "max_gross_exposure"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and not math.isnan(value) and value > 0):
                raise ExecutionError(f"execution.gate.{name} must be a positive number, got {value!r}")
        if math.isinf(self.price_band):
            raise ExecutionError("execution.gate.price_band must be a positive number, got inf")


@dataclass(frozen=True)
class GateLimits:
    """The limits the gate enforces for one decision, and where each came from (``risk`` or ``operator``)."""

    max_order_notional: float
    max_position_notional: float
    max_gross_exposure: float
    price_band: float
    reduce_only: bool  # the day's drawdown kill switch (risk.kill_drawdown)
    kill_switch: bool  # the operator's emergency stop (execution.gate.kill_switch)
    sources: dict[str, str]

    @classmethod
    def of(cls, config: GateConfig, limits: RiskLimits | None) -> GateLimits:
        """The tighter of the day's ``limits`` (None: no decision, only the ceilings) and the operator's ceilings."""
        day = {
            "max_order_notional": 2.0 * limits.symbol_cap if limits else INF,
            "max_position_notional": limits.symbol_cap if limits else INF,
            "max_gross_exposure": limits.gross_cap if limits else INF,
        }
        values = {k: min(v, getattr(config, k)) for k, v in day.items()}
        sources = {k: "risk" if day[k] <= getattr(config, k) else "operator" for k in day}
        reduce_only = bool(limits and limits.kill_switch)
        sources["reduce_only"] = "risk.kill_drawdown"
        sources["kill_switch"] = "execution.gate.kill_switch"
        return cls(
            **values,
            price_band=config.price_band,
            reduce_only=reduce_only,
            kill_switch=config.kill_switch,
            sources=sources,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (an unlimited notional shows as null)."""

        def finite(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {
            "max_order_notional": finite(self.max_order_notional),
            "max_position_notional": finite(self.max_position_notional),
            "max_gross_exposure": finite(self.max_gross_exposure),
            "price_band": self.price_band,
            "reduce_only": self.reduce_only,
            "kill_switch": self.kill_switch,
            "sources": dict(self.sources),
        }


@dataclass(frozen=True)
class Rejection:
    parent_id: str
    symbol: str
    limit: str
    amount: float
    threshold: float
    detail: str = ""

    @property
    def message(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.symbol}: {self.limit} {self.amount:,.4g} exceeds {self.threshold:,.4g}{extra}"


class GateRejected(ExecutionError):
    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection
        super().__init__(f"pre-trade gate rejected order {rejection.parent_id}: {rejection.message}")


class KillSwitchEngaged(GateRejected):
    pass


@dataclass(frozen=True)
class ApprovedOrder:
    """A parent order that passed every check; only ``PreTradeGate`` can build one."""

    parent: Order
    last_price: float
    _token: object = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self._token is not _TOKEN:
            raise ExecutionError("ApprovedOrder can only be created by PreTradeGate.check")


class PreTradeGate:
    """Stateful only in its kill switch; exposure comes in with every call (from the ledger). ``limits``: the
    decision's stored risk limits (see the module docstring)."""

    def __init__(self, config: GateConfig = GateConfig(), limits: RiskLimits | None = None) -> None:
        self.limits = GateLimits.of(config, limits)
        self._kill_reason: str | None = "configured (execution.gate.kill_switch)" if config.kill_switch else None

    @property
    def kill_switch_engaged(self) -> bool:
        return self._kill_reason is not None

    def engage_kill_switch(self, reason: str = "engaged") -> None:
        self._kill_reason = reason

    def release_kill_switch(self) -> None:
        self._kill_reason = None

    def ensure_trading_allowed(self, symbol: str = "*", order_id: str = "-") -> None:
        """Raise ``KillSwitchEngaged`` when the kill switch is on (checked before every send)."""
        if self._kill_reason is not None:
            raise KillSwitchEngaged(Rejection(order_id, symbol, "kill_switch", 1.0, 0.0, self._kill_reason))

    def check(self, parent: Order, exposure: Exposure) -> ApprovedOrder:
        """Approve ``parent`` or raise ``GateRejected``. An approved order is added to ``exposure``, so a batch
        is checked cumulatively."""
        self.ensure_trading_allowed(parent.symbol, parent.parent_id)
        c = self.limits
        pid, sym = parent.parent_id, parent.symbol

        def reject(limit: str, amount: float, threshold: float, detail: str = "") -> GateRejected:
            return GateRejected(Rejection(pid, sym, limit, amount, threshold, detail))

        last = exposure.prices.get(sym)
        if last is None or not _usable(last):
            raise reject("last_price", float("nan"), 0.0, "no usable last price for the price band")
        notional = parent.quantity * max(parent.reference_price, last)
        if _over(notional, c.max_order_notional):
            raise reject("max_order_notional", notional, c.max_order_notional)
        deviation = abs(parent.reference_price / last - 1.0)
        if deviation > c.price_band:
            raise reject("price_band", deviation, c.price_band, f"reference {parent.reference_price} vs last {last}")
        before = exposure.units.get(sym, 0.0)
        after = before + parent.signed_quantity
        if c.reduce_only and abs(after) > abs(before):
            raise reject("reduce_only", abs(after), abs(before), "units; only orders that reduce a position pass")
        if c.reduce_only and before * after < 0:
            raise reject("reduce_only", after, 0.0, f"units; would flip the position {before:+g} past zero")
        position = abs(after) * last
        if _over(position, c.max_position_notional):
            raise reject("max_position_notional", position, c.max_position_notional, f"position {after:+g} units")
        unpriced = sorted(exposure.unpriced - {sym})
        if unpriced:
            raise reject("last_price", float("nan"), 0.0, f"no last price for held symbols {unpriced[:5]}")
        gross = exposure.gross - exposure.notional(sym) + position
        if _over(gross, c.max_gross_exposure):
            raise reject("max_gross_exposure", gross, c.max_gross_exposure)
        exposure.add(sym, parent.signed_quantity)
        return ApprovedOrder(parent, last, _TOKEN)


def _over(value: float, limit: float) -> bool:
    return value > limit * (1 + TOLERANCE)


def _usable(price: float | None) -> bool:
    return price is not None and math.isfinite(price) and price > 0


class Exposure:
    """Signed units per symbol once every working order completes, valued at the last prices, with the gross
    notional kept up to date as a batch is approved (so a batch of n orders is checked in O(n))."""

    def __init__(self, units: Mapping[str, float], last_prices: Mapping[str, float]) -> None:
        self.units = {s: float(u) for s, u in units.items() if u}
        self.prices = dict(last_prices)
        self.unpriced = {s for s in self.units if not _usable(self.prices.get(s))}
        self.gross = sum(self.notional(s) for s in self.units)

    def notional(self, symbol: str) -> float:
        if symbol in self.unpriced or symbol not in self.units:
            return 0.0
        return abs(self.units[symbol]) * self.prices[symbol]

    def add(self, symbol: str, delta: float) -> None:
        self.gross -= self.notional(symbol)
        self.units[symbol] = self.units.get(symbol, 0.0) + delta
        if _usable(self.prices.get(symbol)):
            self.unpriced.discard(symbol)
        else:
            self.unpriced.add(symbol)
        self.gross += self.notional(symbol)
