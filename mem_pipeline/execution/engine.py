"""``execute``: one decision's parent orders to child orders at the broker, exactly once.

1. Reconcile the ledger with the broker (catch up on fills and states, adopt unknown MEM orders, find the
   orders a previous run wrote but never got to the broker).
2. Send again the orders reconciliation proved absent (same client id) — unless they are older than the
   child time to live (``child_ttl_seconds``, from the plan's write): those expire unsent, with the reason in
   the ledger's transition log. A child left ``new`` by the kill switch or an open breaker, or absent after
   every retry, is thus never sent days later at a price and exposure nobody checked.
3. Skip parents the ledger already has (a duplicate sensor tick or a run retry plans nothing new); put every
   new parent through the pre-trade gate; plan its children with its schedule.
4. Write all new parents and children (state ``new``) in one transaction — before anything is sent.
5. Send each child through the circuit breaker, the kill switch checked before each. Before a chunk of
   children is sent, one ledger transaction extends the run lock and marks them sent (``Ledger.mark_sending``;
   a marked order is resent only after a lookup proves the broker lacks it). Before every send the lease is
   checked on the ledger's clock: once half its time to live has passed it is extended first, and a lost
   lock (``LedgerBusy``) stops sending, so a slow exchange never sends on a lease another executor may have
   taken over. Replies are booked in batches (every ``flush_every`` replies and at the end; each flush also
   extends the lock): a reply lost to a crash is recovered by the next reconciliation, because the order was
   in the ledger before it was sent.
6. On any doubt (timeout, lost reply, unexpected exception, duplicate client id) the order is looked up by
   client id: found → adopted; proven absent → sent again later in this run (``retries`` passes);
   lookup failed → marked ``submitted`` and left to the next reconciliation. Never resent blindly.

``crash_hook(step)`` is called at every numbered step (``reconciled``, ``planned``, ``before_send``,
``marked_sent``, ``after_send``, ``flushed``): a test raises ``SimulatedCrash`` there to kill the "process"
between any two steps. Wall-clock phases are measured with ``time.perf_counter`` and returned (``timings``,
``latency_s``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import polars as pl

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.orders import Order, orders_from_frame
from mem_pipeline.execution.breaker import BreakerConfig, CircuitBreaker
from mem_pipeline.execution.brokers.base import Broker
from mem_pipeline.execution.brokers.ccxt_broker import CcxtBrokerConfig
from mem_pipeline.execution.brokers.paper import PaperConfig
from mem_pipeline.execution.errors import BrokerRejected, DuplicateClientOrderId, ExecutionError
from mem_pipeline.execution.gate import (
    Exposure,
    GateConfig,
    GateRejected,
    KillSwitchEngaged,
    PreTradeGate,
    Rejection,
)
from mem_pipeline.execution.ledger import ChildRecord, Ledger
from mem_pipeline.execution.orders import ChildOrder, OrderReport
from mem_pipeline.execution.reconcile import ReconcileReport, reconcile
from mem_pipeline.execution.schedules import CostModel, MarketStats, ScheduleConfig, plan_children
from mem_pipeline.execution.states import OrderState

log = logging.getLogger(__name__)

BROKERS = ("paper", "ccxt")
CrashHook = Callable[[str], None]


@dataclass(frozen=True)
class EngineConfig(ParamsConfig):
    """``execution`` top-level scalars in params.yaml."""

    SECTION: ClassVar[str] = "execution"
    ERROR: ClassVar[type[Exception]] = ExecutionError

    broker: str = "paper"
    ledger_url: str = ""  # empty: SQLite under data/ledger
    flush_every: int = 200
    retries: int = 2
    retry_delay_seconds: float = 0.0
    lock_ttl_seconds: float = 120.0
    child_ttl_seconds: float = 28_800.0  # 8 h: an unsent child older than this expires instead of being sent

    def __post_init__(self) -> None:
        if self.child_ttl_seconds <= 0:
            raise ExecutionError(f"execution.child_ttl_seconds must be > 0, got {self.child_ttl_seconds}")
        if self.broker not in BROKERS:
            raise ExecutionError(f"execution.broker must be one of {list(BROKERS)}, got {self.broker!r}")
        if self.flush_every < 1 or self.retries < 0 or self.retry_delay_seconds < 0:
            raise ExecutionError("execution needs flush_every >= 1, retries >= 0 and retry_delay_seconds >= 0")


@dataclass(frozen=True)
class ExecutionConfig:
    """The whole ``execution`` section of params.yaml."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    ccxt: CcxtBrokerConfig = field(default_factory=CcxtBrokerConfig)

    @classmethod
    def from_params(cls, d: Mapping[str, Any] | None) -> ExecutionConfig:
        d = dict(d or {})
        nested = {key: d.pop(key, None) for key in ("gate", "breaker", "schedule", "paper")}
        ccxt_params = d.pop("ccxt", None)
        return cls(
            engine=EngineConfig.from_params(d),
            gate=GateConfig.from_params(nested["gate"]),
            breaker=BreakerConfig.from_params(nested["breaker"]),
            schedule=ScheduleConfig.from_params(nested["schedule"]),
            paper=PaperConfig.from_params(nested["paper"]),
            ccxt=CcxtBrokerConfig.from_params(ccxt_params),
        )


@dataclass(frozen=True)
class ExecutionResult:
    decision_versions: tuple[str, ...]
    parents_received: int
    parents_planned: int
    parents_skipped: int  # already in the ledger: a duplicate tick or retry
    rejections: tuple[Rejection, ...]
    children_planned: int
    submitted: int  # accepted by the broker in this run (first sends and resends)
    resent: int  # of which orders a previous run wrote but never got to the broker
    recovered: int  # doubtful sends found at the broker by lookup
    broker_rejected: int
    pending: tuple[str, ...]  # left `new` (kill switch, open breaker, or absent after every retry)
    expired: tuple[str, ...]  # unsent children older than the time to live: expired, not sent
    unresolved: tuple[str, ...]  # lookup failed: the next reconciliation decides
    stopped_by: str  # "" | "kill_switch" | "circuit_breaker"
    breaker: dict[str, Any]
    reconcile: ReconcileReport
    timings: dict[str, float]
    latency_s: float | None  # decision frame in → last child accepted by the broker

    def summary(self) -> dict[str, Any]:
        """JSON-able figures for logs and Dagster metadata (no secrets: ids, counts and times only)."""
        return {
            "decision_versions": list(self.decision_versions),
            "parents_received": self.parents_received,
            "parents_planned": self.parents_planned,
            "parents_skipped": self.parents_skipped,
            "gate_rejections": [r.message for r in self.rejections],
            "children_planned": self.children_planned,
            "submitted": self.submitted,
            "resent": self.resent,
            "recovered": self.recovered,
            "broker_rejected": self.broker_rejected,
            "pending": len(self.pending),
            "expired": len(self.expired),
            "unresolved": len(self.unresolved),
            "stopped_by": self.stopped_by,
            "breaker": self.breaker,
            "reconcile": self.reconcile.summary(),
            "timings_s": {k: round(v, 6) for k, v in self.timings.items()},
            "latency_s": self.latency_s,
        }


def _no_crash(step: str) -> None:
    return None


MARK_CHUNK = 50  # children marked sent per ledger transaction (a crash costs at most this many lookups)


class _Lease:
    """The run lock as the sender holds it. ``since``: a time no later than its last extension, on the
    ledger's clock (the clock the lock's expiry is written with)."""

    def __init__(self, ledger: Ledger, owner: str, ttl_seconds: float) -> None:
        self.ledger, self.owner, self.ttl = ledger, owner, ttl_seconds
        self.since = ledger.now()  # taken before the lock is acquired

    def keep(self) -> None:
        """Before a send: extend the lock once half its time to live has passed (``LedgerBusy`` if lost)."""
        if (self.ledger.now() - self.since).total_seconds() > self.ttl / 2:
            self.extend()

    def extend(self) -> None:
        at = self.ledger.now()
        self.ledger.refresh_lock(self.owner, self.ttl)
        self.since = at

    def mark_sent(self, client_ids: Sequence[str]) -> None:
        """Extend the lock and mark ``client_ids`` sent, in one transaction (``LedgerBusy``: nothing marked)."""
        at = self.ledger.now()
        self.ledger.mark_sending(client_ids, self.owner, self.ttl)
        self.since = at


class _Sender:
    """Sends children, books replies in batches, resolves doubts by lookup; the only path to the broker."""

    def __init__(
        self,
        ledger: Ledger,
        broker: Broker,
        gate: PreTradeGate,
        breaker: CircuitBreaker,
        hook: CrashHook,
        flush: int,
        lease: _Lease,
    ) -> None:
        self.ledger, self.broker, self.gate, self.breaker, self.hook = ledger, broker, gate, breaker, hook
        self.flush_every = flush
        self.lease = lease
        self.marked: set[str] = set()  # marked sent in this run
        self.buffer: list[OrderReport] = []
        self.submitted = self.recovered = self.rejected = 0
        self.absent: list[ChildOrder] = []
        self.pending: list[str] = []
        self.unresolved: list[str] = []
        self.stopped_by = ""
        self.last_accept: float | None = None

    def send_all(self, children: Sequence[ChildOrder]) -> None:
        for i in range(0, len(children), MARK_CHUNK):
            chunk = children[i : i + MARK_CHUNK]
            if not self.stopped_by:
                self._mark([c.client_id for c in chunk])
            for child in chunk:
                self.send(child)

    def _mark(self, client_ids: Sequence[str]) -> None:
        self.lease.mark_sent(client_ids)  # LedgerBusy if another executor took the lock: nothing sent
        self.marked.update(client_ids)

    def send(self, child: ChildOrder) -> None:
        if not self.stopped_by:
            self.hook("before_send")
            try:
                self.gate.ensure_trading_allowed(child.symbol, child.client_id)
            except KillSwitchEngaged:
                self.stopped_by = "kill_switch"
            else:
                if not self.breaker.allow():
                    self.stopped_by = "circuit_breaker"
        if self.stopped_by:
            self.pending.append(child.client_id)
            return
        if child.client_id in self.marked:
            self.lease.keep()  # LedgerBusy if the lease ran out and another executor took it: not sent
        else:
            self._mark([child.client_id])
        self.hook("marked_sent")
        try:
            report = self.broker.submit(child)
        except BrokerRejected as exc:
            self.breaker.record_success()  # the broker answered
            self.rejected += 1
            self._book(_rejected(child, str(exc)))
            return
        except DuplicateClientOrderId:
            self.breaker.record_success()
            self._resolve(child)
            return
        except Exception as exc:  # noqa: BLE001 - any other failure: the outcome is unknown
            self.breaker.record_failure()
            log.warning("send %s: %s; looking it up", child.client_id, type(exc).__name__)
            self._resolve(child)
            return
        self.breaker.record_success()
        self.hook("after_send")
        self.submitted += 1
        self.last_accept = time.perf_counter()
        self._book(report)

    def retry(self, child: ChildOrder) -> None:
        """Send an order proven absent earlier, after looking it up once more."""
        self._look_up(child, if_absent=self.send)

    def _resolve(self, child: ChildOrder) -> None:
        self._look_up(child, if_absent=self.absent.append)

    def _look_up(self, child: ChildOrder, if_absent: Callable[[ChildOrder], object]) -> None:
        """Look ``child`` up by client id: adopt it if the broker has it, ``if_absent`` if it proves absent,
        and leave it unresolved (never sent) if the lookup itself fails."""
        try:
            found = self.broker.lookup(child.client_id, child.symbol)
        except Exception as exc:  # noqa: BLE001
            self._unresolved(child, exc)
            return
        if found is None:
            if_absent(child)
        else:
            self._recovered(found)

    def _recovered(self, found: OrderReport) -> None:
        self.recovered += 1
        self.last_accept = time.perf_counter()
        self._book(found)

    def _unresolved(self, child: ChildOrder, exc: Exception) -> None:
        """The lookup failed: mark the order ``submitted`` (it may be at the broker) for the next reconciliation."""
        self.breaker.record_failure()
        log.warning("lookup %s: %s; left for the next reconciliation", child.client_id, type(exc).__name__)
        self.flush()
        record = self.ledger.child(child.client_id)
        if record is not None and record.state is OrderState.NEW:
            self.ledger.set_state(child.client_id, OrderState.SUBMITTED, "sent, outcome unknown")
        self.unresolved.append(child.client_id)

    def _book(self, report: OrderReport) -> None:
        self.buffer.append(report)
        if len(self.buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.ledger.apply_reports(self.buffer, "broker reply")
            self.buffer = []
            self.hook("flushed")
            self.lease.extend()  # raises LedgerBusy if another executor took over: stop sending


def _rejected(child: ChildOrder, reason: str) -> OrderReport:
    return OrderReport(
        child.client_id, "", child.symbol, child.side, child.quantity, OrderState.REJECTED, reason=reason
    )


class SecondVersionRefused(ExecutionError):
    """A later decision version of a day that was already executed: its orders would double the day's trades."""


def _expire_stale(ledger: Ledger, absent: Sequence[ChildRecord], ttl_seconds: float) -> list[str]:
    """Expire the unsent children older than ``ttl_seconds``; their client ids. The reason names the age."""
    now = ledger.now()
    moves = [
        (
            r.client_id,
            OrderState.EXPIRED,
            f"expired unsent: {r.age_seconds(now):.0f} s old, time to live {ttl_seconds:g} s",
        )
        for r in absent
        if r.age_seconds(now) > ttl_seconds
    ]
    if moves:
        log.warning("execute: %d unsent children older than %g s expired, not sent", len(moves), ttl_seconds)
        ledger.set_states(moves)
    return [cid for cid, _, _ in moves]


def _one_version_per_day(ledger: Ledger, parents: Sequence[Order]) -> None:
    """Refuse a decision version when another version of the same day already has orders in the ledger."""
    for day in sorted({p.decision_date for p in parents}):
        mine = {p.decision_version for p in parents if p.decision_date == day}
        others = [v for v in ledger.executed_versions(day) if v not in mine]
        if others or len(mine) > 1:
            first = others[0] if others else sorted(mine)[0]
            raise SecondVersionRefused(
                f"{day} was already executed under decision {first}: a later version of the same day "
                f"({', '.join(sorted(mine - {first}))}) is not sent too; its orders would double the day's trades"
            )


def execute(
    orders: pl.DataFrame,
    ledger: Ledger,
    broker: Broker,
    gate: PreTradeGate,
    breaker: CircuitBreaker,
    *,
    schedule: ScheduleConfig | None = None,
    last_prices: Mapping[str, float] | None = None,
    market: Mapping[str, MarketStats] | None = None,
    cost_model: CostModel | None = None,
    profile: Sequence[float] | None = None,
    flush_every: int = 200,
    retries: int = 2,
    retry_delay_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    batched: bool = True,
    crash_hook: CrashHook | None = None,
    lock_owner: str | None = None,
    lock_ttl_seconds: float = 120.0,
    one_version_per_day: bool = False,
    child_ttl_seconds: float = EngineConfig.child_ttl_seconds,
) -> ExecutionResult:
    """Execute the parent orders of ``orders`` (``ORDER_SCHEMA``; one or more decision versions).

    ``last_prices`` (symbol → last traded price) feed the gate's price band and exposure; they default to
    the orders' reference prices, which makes the band check vacuous — pass the latest bars' closes.
    ``market`` (symbol → ADV, vol, spread) and ``cost_model`` (the slippage model's ``predict``) give each
    slice its expected cost. Orders proven absent after a failed send are sent again up to ``retries`` times,
    each pass after ``retry_delay_seconds`` and a fresh lookup (for a real exchange set the delay above its
    request timeout: a request still in flight must land before its absence is trusted).
    ``batched=False`` writes one transaction per parent and per reply (the
    benchmark's baseline). Idempotent: run twice on the same frame, the second run sends nothing.
    ``one_version_per_day``: refuse (``SecondVersionRefused``, checked under the run lock) a decision version
    when another version of the same day already has orders in the ledger (the production path sets it).
    ``child_ttl_seconds``: an unsent child (left ``new``, or proven absent) older than this is expired, not sent.
    """
    t0 = time.perf_counter()
    hook = crash_hook or _no_crash
    parents = orders_from_frame(orders)
    owner = lock_owner or f"execute:{os.getpid()}:{t0}"
    lease = _Lease(ledger, owner, lock_ttl_seconds)
    with ledger.lock(owner, lock_ttl_seconds):
        rec = reconcile(ledger, broker)
        t_rec = time.perf_counter()
        hook("reconciled")

        if one_version_per_day:
            _one_version_per_day(ledger, parents)
        known = ledger.known_parents(p.parent_id for p in parents)
        fresh = [p for p in parents if p.parent_id not in known]
        prices = dict(last_prices) if last_prices is not None else {p.symbol: p.reference_price for p in parents}
        exposure = Exposure(ledger.exposure(), prices)
        planned: list[tuple[Order, list[ChildOrder]]] = []
        rejected: list[tuple[Order, Rejection]] = []
        for parent in fresh:
            try:
                approved = gate.check(parent, exposure)
            except GateRejected as exc:
                log.warning("%s", exc)
                rejected.append((parent, exc.rejection))
                continue
            stats = market.get(parent.symbol) if market else None
            children = plan_children(
                approved.parent, schedule or ScheduleConfig(), profile=profile, stats=stats, cost_model=cost_model
            )
            planned.append((approved.parent, children))
        t_plan = time.perf_counter()

        if batched:
            ledger.record_plan(planned, rejected)
        else:
            for item in planned:
                ledger.record_plan([item])
            ledger.record_plan([], rejected)
        t_write = time.perf_counter()
        hook("planned")

        sender = _Sender(ledger, broker, gate, breaker, hook, flush_every if batched else 1, lease)
        expired = _expire_stale(ledger, rec.absent, child_ttl_seconds)
        resend = [r.to_child() for r in rec.absent if r.client_id not in expired]
        sender.send_all(resend)
        resent = sender.submitted
        sender.send_all([child for _, children in planned for child in children])
        for _ in range(retries):
            if not sender.absent or sender.stopped_by:
                break
            if retry_delay_seconds > 0:
                sleep(retry_delay_seconds)  # a request still in flight must land before absence is trusted
            again, sender.absent = sender.absent, []
            for child in again:
                sender.retry(child)
        sender.flush()
        t_send = time.perf_counter()

    pending = tuple(sender.pending) + tuple(c.client_id for c in sender.absent)
    result = ExecutionResult(
        decision_versions=tuple(dict.fromkeys(p.decision_version for p in parents)),
        parents_received=len(parents),
        parents_planned=len(planned),
        parents_skipped=len(parents) - len(fresh),
        rejections=tuple(r for _, r in rejected),
        children_planned=sum(len(c) for _, c in planned),
        submitted=sender.submitted,
        resent=resent,
        recovered=sender.recovered,
        broker_rejected=sender.rejected,
        pending=pending,
        expired=tuple(expired),
        unresolved=tuple(sender.unresolved),
        stopped_by=sender.stopped_by,
        breaker=breaker.snapshot(),
        reconcile=rec,
        timings={
            "reconcile_s": t_rec - t0,
            "gate_and_plan_s": t_plan - t_rec,
            "ledger_write_s": t_write - t_plan,
            "send_s": t_send - t_write,
            "total_s": t_send - t0,
        },
        latency_s=(sender.last_accept - t0) if sender.last_accept is not None else None,
    )
    log.info("execute: %s", result.summary())
    return result
