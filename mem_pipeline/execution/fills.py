"""Booking broker fills into the ledger under the run lock (the fills job's domain step).

``book_fills`` holds the ledger's run lock (the one ``execute`` holds) while a simulating broker (the paper
broker's ``on_bars``) fills open orders and reconciliation books what the broker reports: fills are never
booked while an executor is between writing its plan and sending, and never by two jobs at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from mem_pipeline.execution.brokers.base import Broker
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.execution.reconcile import ReconcileReport, reconcile


@dataclass(frozen=True)
class FillsResult:
    broker_fills: int  # fills the simulating broker made now (0 for a real exchange)
    reconcile: ReconcileReport


def book_fills(
    ledger: Ledger,
    broker: Broker,
    bars: pl.DataFrame | Callable[[], pl.DataFrame] | None = None,
    *,
    lock_owner: str | None = None,
    lock_ttl_seconds: float = 120.0,
) -> FillsResult:
    """Under the run lock (``LedgerBusy`` if another executor holds it): let a broker with ``on_bars`` fill
    open orders against ``bars`` (a frame, or a loader called only for such a broker), then reconcile."""
    owner = lock_owner or f"fills:{os.getpid()}:{time.perf_counter()}"
    with ledger.lock(owner, lock_ttl_seconds):
        made = 0
        on_bars = getattr(broker, "on_bars", None)
        if on_bars is not None and bars is not None:  # the paper broker simulates; an exchange fills on its own
            made = on_bars(bars() if callable(bars) else bars)
        return FillsResult(made, reconcile(ledger, broker))
