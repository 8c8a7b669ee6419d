"""Fault injection: a broker wrapper that fails the way real brokers do, seeded and reproducible.

On ``submit``, with the configured probabilities: ``lost_reply`` (the broker accepts the order, the reply
never arrives), ``timeout`` (the request never reaches the broker), ``reject`` (a definite refusal),
``partial`` (accepted and immediately partly filled; needs an inner broker with ``fill_now``) and
``raise`` (an unexpected exception, after the broker accepted the order or not, at random). ``lookup`` and
``orders`` time out with ``lookup_timeout``. ``injected`` records every fault for the test's report.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from mem_pipeline.execution.brokers.base import Broker
from mem_pipeline.execution.errors import BrokerAmbiguous, BrokerRejected
from mem_pipeline.execution.orders import ChildOrder, OrderReport


@dataclass(frozen=True)
class FaultRates:
    lost_reply: float = 0.0
    timeout: float = 0.0
    reject: float = 0.0
    partial: float = 0.0
    raise_: float = 0.0
    lookup_timeout: float = 0.0

    def __post_init__(self) -> None:
        submit = self.lost_reply + self.timeout + self.reject + self.partial + self.raise_
        if min(self.lost_reply, self.timeout, self.reject, self.partial, self.raise_, self.lookup_timeout) < 0:
            raise ValueError("fault rates must be >= 0")
        if submit > 1 or self.lookup_timeout > 1:
            raise ValueError(f"submit fault rates add up to {submit} > 1")


class InjectedError(RuntimeError):
    """The unexpected exception of a ``raise`` fault (deliberately not a ``BrokerError``)."""


class FaultyBroker:
    def __init__(self, inner: Broker, rates: FaultRates, seed: int) -> None:
        self.inner = inner
        self.rates = rates
        self.name = f"faulty({inner.name})"
        self._rng = random.Random(seed)
        self.injected: list[tuple[str, str]] = []  # (fault, client id or call)

    def submit(self, order: ChildOrder) -> OrderReport:
        r, u = self.rates, self._rng.random()
        for fault, p in (
            ("lost_reply", r.lost_reply),
            ("timeout", r.timeout),
            ("reject", r.reject),
            ("partial", r.partial),
            ("raise", r.raise_),
        ):
            if u < p:
                self.injected.append((fault, order.client_id))
                return self._inject(fault, order)
            u -= p
        return self.inner.submit(order)

    def _inject(self, fault: str, order: ChildOrder) -> OrderReport:
        if fault == "lost_reply":
            self.inner.submit(order)
            raise BrokerAmbiguous(f"injected: reply to {order.client_id} lost")
        if fault == "timeout":
            raise BrokerAmbiguous(f"injected: request for {order.client_id} timed out")
        if fault == "reject":
            raise BrokerRejected(f"injected: {order.client_id} rejected")
        if fault == "partial":
            report = self.inner.submit(order)
            fill_now = getattr(self.inner, "fill_now", None)
            return fill_now(order.client_id, 0.5) if fill_now is not None else report
        if self._rng.random() < 0.5:
            self.inner.submit(order)
        raise InjectedError(f"injected: unexpected failure sending {order.client_id}")

    def lookup(self, client_id: str, symbol: str) -> OrderReport | None:
        if self._rng.random() < self.rates.lookup_timeout:
            self.injected.append(("lookup_timeout", client_id))
            raise BrokerAmbiguous(f"injected: lookup of {client_id} timed out")
        return self.inner.lookup(client_id, symbol)

    def orders(self, symbols: Iterable[str] | None = None) -> list[OrderReport]:
        if self._rng.random() < self.rates.lookup_timeout:
            self.injected.append(("lookup_timeout", "orders"))
            raise BrokerAmbiguous("injected: listing orders timed out")
        return self.inner.orders(symbols)

    def cancel(self, client_id: str, symbol: str) -> OrderReport:
        return self.inner.cancel(client_id, symbol)
