"""Reconciliation of the ledger with the broker, both ways — at every start and after any doubt.

* Every live ledger order is looked up (first in the broker's order listing, then one by one by client id
  for those the listing lacks): found → the ledger catches up with the broker's state and fills; proven
  absent and still ``new``/``submitted`` → safe to (re)send; lookup failing → unresolved (never resent).
  A ``new`` order never marked sent (``sent_at`` empty: no executor handed it to a broker) needs no lookup;
  one marked sent is resent only after a lookup by client id proves it absent — never because a listing
  did not show it.
* Every broker order carrying MEM's client-id prefix that the ledger lacks is adopted (written to the
  ledger with its state and fills), so nothing the broker holds is unknown to MEM.
* A live ledger order the broker once acknowledged but no longer knows is reported, not resent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mem_pipeline.execution.brokers.base import Broker
from mem_pipeline.execution.ids import is_mem_client_id
from mem_pipeline.execution.ledger import LIVE, ChildRecord, Ledger
from mem_pipeline.execution.orders import OrderReport
from mem_pipeline.execution.states import OrderState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    checked: int = 0
    updated: int = 0
    new_fills: int = 0
    adopted: tuple[str, ...] = ()
    absent: tuple[ChildRecord, ...] = field(default=(), repr=False)  # proven absent: safe to (re)send
    unresolved: tuple[str, ...] = ()  # lookup failed: state unknown, must not be sent
    missing_at_broker: tuple[str, ...] = ()  # acknowledged once, unknown to the broker now
    conflicts: tuple[str, ...] = ()  # ledger terminal, broker says otherwise
    listing_failed: bool = False

    def summary(self) -> dict[str, object]:
        return {
            "checked": self.checked,
            "updated": self.updated,
            "new_fills": self.new_fills,
            "adopted": len(self.adopted),
            "absent": len(self.absent),
            "unresolved": len(self.unresolved),
            "missing_at_broker": len(self.missing_at_broker),
            "conflicts": len(self.conflicts),
            "listing_failed": self.listing_failed,
        }


def reconcile(ledger: Ledger, broker: Broker) -> ReconcileReport:
    live = ledger.children(states=LIVE)
    listing: dict[str, OrderReport] = {}
    listing_failed = False
    try:
        listing = {r.client_id: r for r in broker.orders()}
    except Exception as exc:  # noqa: BLE001 - any broker failure: fall back to lookups by client id
        listing_failed = True
        log.warning("reconcile: listing broker orders failed (%s); looking orders up one by one", type(exc).__name__)

    reports: list[OrderReport] = []
    absent: list[ChildRecord] = []
    unresolved: list[str] = []
    missing: list[str] = []
    for record in live:
        report = listing.get(record.client_id)
        if report is None and record.sent_at is None and record.state is OrderState.NEW:
            absent.append(record)  # written, never sent by anyone: nothing to look up
            continue
        if report is None:
            try:
                report = broker.lookup(record.client_id, record.symbol)
            except Exception as exc:  # noqa: BLE001 - unknown outcome: leave it, never resend
                log.warning("reconcile: lookup of %s failed (%s)", record.client_id, type(exc).__name__)
                unresolved.append(record.client_id)
                continue
        if report is not None:
            reports.append(report)
        elif record.state in (OrderState.NEW, OrderState.SUBMITTED):
            absent.append(record)
        else:
            missing.append(record.client_id)
            log.error("reconcile: %s is %s in the ledger but unknown to the broker", record.client_id, record.state)
    result = ledger.apply_reports(reports, "reconcile") if reports else None

    live_ids = {r.client_id for r in live}
    candidates = [cid for cid in listing if cid not in live_ids and is_mem_client_id(cid)]
    in_ledger = ledger.known_children(candidates)
    foreign = [listing[cid] for cid in candidates if cid not in in_ledger]  # other prefixes: never touched
    conflicts = list(result.conflicts) if result else []
    if foreign:
        conflicts += ledger.apply_reports(foreign, "reconcile: adopted broker order", adopt=True).conflicts
        log.warning("reconcile: adopted %d broker orders the ledger lacked", len(foreign))
    adopted = [r.client_id for r in foreign]
    report = ReconcileReport(
        checked=len(live),
        updated=result.updated if result else 0,
        new_fills=result.new_fills if result else 0,
        adopted=tuple(adopted),
        absent=tuple(absent),
        unresolved=tuple(unresolved),
        missing_at_broker=tuple(missing),
        conflicts=tuple(conflicts),
        listing_failed=listing_failed,
    )
    log.info("reconcile: %s", report.summary())
    return report
