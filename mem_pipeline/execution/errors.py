"""Execution errors. Broker errors say whether the broker may hold the order: that decides lookup vs resend."""

from __future__ import annotations

from mem_pipeline.core.errors import MemError


class ExecutionError(MemError):
    """Bad execution input or configuration (names the key, column or order and the rule broken)."""


class IllegalTransition(ExecutionError):
    """An order was asked to move between states the state machine does not connect."""

    def __init__(self, client_id: str, current: str, target: str) -> None:
        self.client_id, self.current, self.target = client_id, current, target
        super().__init__(f"order {client_id}: illegal state transition {current} -> {target}")


class LedgerBusy(ExecutionError):
    """Another executor holds the ledger's run lock."""


class BrokerError(MemError):
    """The broker failed; whether it holds the order is unknown, so the order must be looked up."""


class BrokerAmbiguous(BrokerError):
    """Timeout or lost reply: the broker may or may not have accepted the order."""


class BrokerRejected(BrokerError):
    """The broker definitely refused the order (it does not hold it)."""


class DuplicateClientOrderId(BrokerError):
    """The broker already holds an order with this client id: look it up, never resend."""


class CircuitOpen(BrokerError):
    """The circuit breaker is open: nothing is sent until its half-open probe succeeds."""


class SimulatedCrash(BaseException):  # noqa: N818 - a process death, not an error a handler may swallow
    """Raised by a crash hook to simulate the process dying at a numbered step of submission.

    A ``BaseException`` so that no ``except Exception`` in the engine or a broker can swallow it.
    """
