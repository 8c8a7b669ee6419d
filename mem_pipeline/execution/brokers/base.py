"""The broker port. Adapters raise ``BrokerRejected`` when the broker definitely refused an order,
``DuplicateClientOrderId`` when it already holds the client id, and ``BrokerAmbiguous`` (or any other
exception) when the outcome is unknown — the engine then looks the order up by client id."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from mem_pipeline.execution.orders import ChildOrder, OrderReport


@runtime_checkable
class Broker(Protocol):
    name: str

    def submit(self, order: ChildOrder) -> OrderReport:
        """Send one order under ``order.client_id``; the report of the accepted order."""
        ...

    def lookup(self, client_id: str, symbol: str) -> OrderReport | None:
        """The order with this client id, or None if the broker has no such order (proven absence)."""
        ...

    def orders(self, symbols: Iterable[str] | None = None) -> list[OrderReport]:
        """Every order the broker holds (open and recently closed), for reconciliation."""
        ...

    def cancel(self, client_id: str, symbol: str) -> OrderReport: ...
