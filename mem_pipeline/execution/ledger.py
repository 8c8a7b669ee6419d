"""The order ledger: parent orders, child orders, fills, positions and every state transition with its time.

SQLAlchemy Core over any URL; by default SQLite at ``paths.ledger/ledger.sqlite`` in WAL mode with
``synchronous=NORMAL`` (a commit survives a process crash; only an OS crash may lose the last commits,
which reconciliation with the broker then recovers) and a busy timeout so a second reader waits instead of
failing. Every write is one transaction. ``record_plan`` writes a batch of parents with all their children
(state ``new``) before anything is sent — the heart of exactly-once.

Timestamps are UTC from an injectable clock, stored naive (SQLite has no time zones) and read back aware.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

from mem_pipeline.core.orders import Order, Side
from mem_pipeline.core.paths import Paths
from mem_pipeline.core.schemas import POSITION_SCHEMA
from mem_pipeline.core.schemas import SLIPPAGE_DATE as DATE
from mem_pipeline.core.schemas import SLIPPAGE_FEATURES as FEATURES
from mem_pipeline.core.schemas import SLIPPAGE_TARGET as TARGET
from mem_pipeline.core.sqlite_wal import enable_wal
from mem_pipeline.execution.errors import ExecutionError, IllegalTransition, LedgerBusy
from mem_pipeline.execution.gate import Rejection
from mem_pipeline.execution.orders import ChildOrder, Fill, OrderReport
from mem_pipeline.execution.states import TERMINAL, OrderState, path, transition

log = logging.getLogger(__name__)

LEDGER_FILE = "ledger.sqlite"
#: A ledger URL with credentials (PostgreSQL) belongs in the environment, not in params.yaml.
LEDGER_URL_ENV = "MEM_LEDGER_URL"
LIVE: frozenset[OrderState] = frozenset(OrderState) - TERMINAL
_CHUNK = 500  # bound parameters per IN (...) query

metadata = sa.MetaData()
parent_orders = sa.Table(
    "parent_orders",
    metadata,
    sa.Column("parent_id", sa.String(40), primary_key=True),
    sa.Column("decision_version", sa.String(128), nullable=False, index=True),
    sa.Column("decision_date", sa.Date, nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("quantity", sa.Float, nullable=False),
    sa.Column("lot_size", sa.Float, nullable=False),
    sa.Column("reference_price", sa.Float, nullable=False),
    sa.Column("notional", sa.Float, nullable=False),
    sa.Column("current_position", sa.Float, nullable=False),
    sa.Column("target_position", sa.Float, nullable=False),
    sa.Column("expected_cost_bps", sa.Float),
    sa.Column("schedule", sa.String(32), nullable=False),
    sa.Column("n_slices", sa.Integer, nullable=False),
    sa.Column("binding_limit", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),  # approved | rejected (by the pre-trade gate)
    sa.Column("reject_limit", sa.String(64)),
    sa.Column("reject_amount", sa.Float),
    sa.Column("reject_threshold", sa.Float),
    sa.Column("reject_message", sa.Text),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
child_orders = sa.Table(
    "child_orders",
    metadata,
    sa.Column("client_id", sa.String(40), primary_key=True),
    sa.Column("parent_id", sa.String(40), sa.ForeignKey("parent_orders.parent_id"), index=True),
    sa.Column("slice_index", sa.Integer),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("quantity", sa.Float, nullable=False),
    sa.Column("reference_price", sa.Float),
    sa.Column("decision_date", sa.Date),
    sa.Column("expected_cost_bps", sa.Float),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("filled_quantity", sa.Float, nullable=False, default=0.0),
    sa.Column("average_price", sa.Float),
    sa.Column("broker_order_id", sa.String(128)),
    sa.Column("adopted", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    # set (under the run lock) just before the order goes to the broker: NULL = never sent by anyone
    sa.Column("sent_at", sa.DateTime),
)
fills = sa.Table(
    "fills",
    metadata,
    sa.Column("fill_id", sa.String(160), primary_key=True),
    sa.Column("client_id", sa.String(40), sa.ForeignKey("child_orders.client_id"), nullable=False, index=True),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("quantity", sa.Float, nullable=False),
    sa.Column("price", sa.Float, nullable=False),
    sa.Column("date", sa.Date),
    sa.Column("cost_bps", sa.Float),
    sa.Column("size_over_adv", sa.Float),
    sa.Column("spread_bps", sa.Float),
    sa.Column("sigma", sa.Float),
    sa.Column("participation", sa.Float),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
)
positions = sa.Table(
    "positions",
    metadata,
    sa.Column("symbol", sa.String(64), primary_key=True),
    sa.Column("quantity", sa.Float, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
transitions = sa.Table(
    "transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client_id", sa.String(40), nullable=False, index=True),
    sa.Column("from_state", sa.String(20)),
    sa.Column("to_state", sa.String(20), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
)
locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)


_IMMEDIATE = "mem_immediate"  # execution option: begin a SQLite transaction with BEGIN IMMEDIATE
_SCHEMA_LOCK_KEY = 0x4D454D4C  # pg_advisory_xact_lock key serialising schema creation ("MEML")


def _sqlite_transactions(engine: sa.Engine, busy_timeout_ms: int) -> None:
    """Pragmas on connect, and SQLAlchemy (not pysqlite) in charge of ``BEGIN``: ``BEGIN IMMEDIATE`` for
    writes (``Ledger._write``), plain ``BEGIN`` otherwise (SQLAlchemy docs, "Serializable isolation /
    Savepoints / Transactional DDL" for pysqlite)."""

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite emits no BEGIN of its own
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")  # first: the next pragmas may wait
        enable_wal(cursor, busy_timeout_ms)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "BEGIN")


def _create_schema(engine: sa.Engine) -> None:
    """Create missing tables and columns, serialised across processes (SQLite: ``BEGIN IMMEDIATE``;
    PostgreSQL: a transaction-scoped advisory lock); a lost race on another backend is retried once."""
    for attempt in range(2):
        try:
            with engine.execution_options(**{_IMMEDIATE: True}).begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
                metadata.create_all(conn)
                columns = {c["name"] for c in sa.inspect(conn).get_columns("child_orders")}
                if "sent_at" not in columns:  # a ledger from before the sent marker: every order may be sent
                    conn.execute(sa.text("ALTER TABLE child_orders ADD COLUMN sent_at TIMESTAMP"))
                    conn.execute(sa.text("UPDATE child_orders SET sent_at = updated_at"))
            return
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError) as exc:
            if attempt or "exist" not in str(exc).lower():
                raise
            log.info("ledger schema: created concurrently by another process (%s); checking again", exc)


def default_url(paths: Paths | None = None) -> str:
    """``sqlite:///<data>/ledger/ledger.sqlite`` (the folder is created)."""
    folder = (paths or Paths.from_env()).ledger
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / LEDGER_FILE}"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ChildRecord:
    """A child order as the ledger holds it."""

    client_id: str
    parent_id: str | None
    slice_index: int | None
    symbol: str
    side: Side
    quantity: float
    reference_price: float | None
    decision_date: dt.date | None
    expected_cost_bps: float | None
    state: OrderState
    filled_quantity: float
    average_price: float | None
    broker_order_id: str | None
    adopted: bool
    sent_at: dt.datetime | None = None  # None: never handed to a broker (safe to send without a lookup)
    created_at: dt.datetime | None = None  # when the plan was written (UTC): its age decides expiry

    def age_seconds(self, now: dt.datetime) -> float:
        """Seconds since the plan was written, at ``now`` (aware); 0 for a record without ``created_at``."""
        return 0.0 if self.created_at is None else (now - self.created_at).total_seconds()

    def to_child(self) -> ChildOrder:
        return ChildOrder(
            client_id=self.client_id,
            parent_id=self.parent_id,
            slice_index=self.slice_index or 0,
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            reference_price=self.reference_price or float("nan"),
            decision_date=self.decision_date or dt.date.min,
            expected_cost_bps=self.expected_cost_bps,
        )


def _record(row: Any) -> ChildRecord:
    """A ``child_orders`` row (all columns, table order) as a ``ChildRecord``."""
    (cid, pid, j, symbol, side, qty, ref, day, cost, state, filled, avg, boid, adopted, *_) = tuple(row)
    sent_at, created_at = row._mapping.get("sent_at"), row._mapping.get("created_at")
    return ChildRecord(
        cid, pid, j, symbol, Side(side), qty, ref, day, cost, OrderState(state), filled, avg, boid, bool(adopted),
        sent_at.replace(tzinfo=dt.UTC) if sent_at is not None else None,
        created_at.replace(tzinfo=dt.UTC) if created_at is not None else None,
    )  # fmt: skip


@dataclass(frozen=True)
class ApplyResult:
    updated: int = 0
    adopted: int = 0
    new_fills: int = 0
    conflicts: tuple[str, ...] = ()  # ledger terminal but the broker says otherwise (logged, never overwritten)


class Ledger:
    """The transactional order ledger. Build with ``Ledger.open(url)``; one instance per process."""

    def __init__(self, engine: sa.Engine, clock: Callable[[], dt.datetime] = _utc_now) -> None:
        self.engine = engine
        self._clock = clock

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        paths: Paths | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
        busy_timeout_ms: int = 10_000,
    ) -> Ledger:
        """Connect and create the tables if missing. ``url`` empty: ``$MEM_LEDGER_URL``, else SQLite under
        ``paths.ledger``. Safe when several processes open a brand-new ledger at once."""
        url = url or os.environ.get(LEDGER_URL_ENV) or default_url(paths)
        engine = sa.create_engine(url)
        if engine.dialect.name == "sqlite":
            database = engine.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            _sqlite_transactions(engine, busy_timeout_ms)
        _create_schema(engine)
        return cls(engine, clock)

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Ledger({self.engine.url.render_as_string(hide_password=True)!r})"

    def now(self) -> dt.datetime:
        """The ledger clock's time (aware, UTC): the time its rows are stamped with."""
        return self._now().replace(tzinfo=dt.UTC)

    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ExecutionError("ledger clock must return a timezone-aware datetime")
        return now.astimezone(dt.UTC).replace(tzinfo=None)

    def _write(self) -> contextlib.AbstractContextManager[sa.Connection]:
        """A write transaction; on SQLite it starts with ``BEGIN IMMEDIATE`` (the write lock is taken before
        the first read, so a read-then-write never works on a stale snapshot)."""
        return self.engine.execution_options(**{_IMMEDIATE: True}).begin()

    # -- run lock -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, owner: str, ttl_seconds: float = 120.0, name: str = "execute") -> Iterator[None]:
        """Hold the ledger's run lock: two executors (e.g. a sensor tick and a retry) never interleave.

        Acquisition is one atomic conditional write: only a free lock, our own, or one past its ``expires_at``
        (its holder died without releasing it) is taken; otherwise ``LedgerBusy``. The holder extends it with
        ``refresh_lock`` (or ``mark_sending``) while it works."""
        self.acquire_lock(owner, ttl_seconds, name)
        try:
            yield
        finally:
            with self._write() as conn:
                conn.execute(sa.delete(locks).where((locks.c.name == name) & (locks.c.owner == owner)))

    def acquire_lock(self, owner: str, ttl_seconds: float = 120.0, name: str = "execute") -> None:
        """Take the run lock for ``owner`` (see ``lock``); ``LedgerBusy`` if another live holder has it."""
        now = self._now()
        expires = now + dt.timedelta(seconds=ttl_seconds)
        try:
            with self._write() as conn:
                taken = conn.execute(
                    locks.update()
                    .where((locks.c.name == name) & ((locks.c.owner == owner) | (locks.c.expires_at < now)))
                    .values(owner=owner, expires_at=expires)
                ).rowcount
                if taken != 1:  # free (no row): insert; a row held by someone else: unique-key violation
                    conn.execute(sa.insert(locks).values(name=name, owner=owner, expires_at=expires))
        except sa.exc.IntegrityError as exc:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(locks).where(locks.c.name == name)).first()
            held = f"held by {row.owner!r} until {row.expires_at}Z" if row is not None else "taken by another executor"
            raise LedgerBusy(f"ledger lock {name!r} is {held}") from exc

    def refresh_lock(self, owner: str, ttl_seconds: float = 120.0, name: str = "execute") -> None:
        """Extend the lock ``owner`` holds; ``LedgerBusy`` if it lost it (expired and taken over): stop sending."""
        with self._write() as conn:
            self._extend(conn, owner, ttl_seconds, name)

    def _extend(self, conn: sa.Connection, owner: str, ttl_seconds: float, name: str) -> None:
        expires = self._now() + dt.timedelta(seconds=ttl_seconds)
        done = conn.execute(
            locks.update().where((locks.c.name == name) & (locks.c.owner == owner)).values(expires_at=expires)
        )
        if done.rowcount != 1:
            raise LedgerBusy(f"ledger lock {name!r} is no longer held by {owner!r}; stopping")

    def mark_sending(
        self, client_ids: Sequence[str], owner: str, ttl_seconds: float = 120.0, name: str = "execute"
    ) -> None:
        """Just before ``client_ids`` go to the broker, in one transaction: extend ``owner``'s lock (``LedgerBusy``
        if it was lost: do not send) and mark the orders sent. A marked order is never resent unless a lookup
        by client id proves the broker lacks it."""
        with self._write() as conn:
            self._extend(conn, owner, ttl_seconds, name)
            now = self._now()
            for i in range(0, len(client_ids), _CHUNK):
                conn.execute(
                    child_orders.update()
                    .where(child_orders.c.client_id.in_(client_ids[i : i + _CHUNK]) & child_orders.c.sent_at.is_(None))
                    .values(sent_at=now)
                )

    # -- parents and children -------------------------------------------------------------------

    def known_parents(self, parent_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(parent_ids))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _CHUNK):
                part = ids[i : i + _CHUNK]
                found.update(
                    conn.scalars(sa.select(parent_orders.c.parent_id).where(parent_orders.c.parent_id.in_(part)))
                )
        return found

    def known_children(self, client_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(client_ids))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _CHUNK):
                query = sa.select(child_orders.c.client_id).where(child_orders.c.client_id.in_(ids[i : i + _CHUNK]))
                found.update(conn.scalars(query))
        return found

    def record_plan(
        self,
        planned: Sequence[tuple[Order, Sequence[ChildOrder]]],
        rejected: Sequence[tuple[Order, Rejection]] = (),
    ) -> None:
        """Write approved parents with all their children (state ``new``) and gate-rejected parents, in one
        transaction. Nothing may be sent before this returns."""
        now = self._now()
        parent_rows = [_parent_row(p, "approved", None, now) for p, _ in planned]
        parent_rows += [_parent_row(p, "rejected", r, now) for p, r in rejected]
        child_rows = [_child_row(c, OrderState.NEW, now) for _, children in planned for c in children]
        with self._write() as conn:
            if parent_rows:
                conn.execute(sa.insert(parent_orders), parent_rows)
            if child_rows:
                conn.execute(sa.insert(child_orders), child_rows)
                conn.execute(
                    sa.insert(transitions),
                    [
                        {
                            "client_id": r["client_id"],
                            "from_state": None,
                            "to_state": "new",
                            "at": now,
                            "reason": "planned",
                        }
                        for r in child_rows
                    ],
                )

    def child(self, client_id: str) -> ChildRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(child_orders).where(child_orders.c.client_id == client_id)).first()
        return _record(row) if row is not None else None

    def children(
        self, states: Iterable[OrderState] | None = None, parent_ids: Iterable[str] | None = None
    ) -> list[ChildRecord]:
        query = sa.select(child_orders).order_by(child_orders.c.created_at, child_orders.c.client_id)
        if states is not None:
            query = query.where(child_orders.c.state.in_([s.value for s in states]))
        with self.engine.connect() as conn:
            if parent_ids is None:
                return [_record(r) for r in conn.execute(query)]
            ids = list(parent_ids)
            out: list[ChildRecord] = []
            for i in range(0, len(ids), _CHUNK):
                out += [
                    _record(r) for r in conn.execute(query.where(child_orders.c.parent_id.in_(ids[i : i + _CHUNK])))
                ]
            return out

    def _load(self, conn: sa.Connection, client_ids: Sequence[str]) -> dict[str, ChildRecord]:
        out: dict[str, ChildRecord] = {}
        for i in range(0, len(client_ids), _CHUNK):
            query = sa.select(child_orders).where(child_orders.c.client_id.in_(client_ids[i : i + _CHUNK]))
            out.update((r.client_id, _record(r)) for r in conn.execute(query))
        return out

    def set_state(self, client_id: str, target: OrderState, reason: str = "") -> None:
        """Move one order to ``target`` (one legal step; ``IllegalTransition`` otherwise)."""
        self.set_states([(client_id, target, reason)])

    def set_states(self, moves: Sequence[tuple[str, OrderState, str]]) -> None:
        """Several single-step moves in one transaction; all or nothing."""
        now = self._now()
        with self._write() as conn:
            current = self._load(conn, [cid for cid, _, _ in moves])
            rows, log_rows = [], []
            for cid, target, reason in moves:
                record = current.get(cid)
                if record is None:
                    raise ExecutionError(f"order {cid}: not in the ledger")
                transition(record.state, target, cid)
                current[cid] = _replace_state(record, target)
                rows.append({"b_cid": cid, "b_state": target.value, "b_now": now})
                log_rows.append(
                    {
                        "client_id": cid,
                        "from_state": record.state.value,
                        "to_state": target.value,
                        "at": now,
                        "reason": reason,
                    }
                )
            if rows:
                conn.execute(
                    child_orders.update()
                    .where(child_orders.c.client_id == sa.bindparam("b_cid"))
                    .values(state=sa.bindparam("b_state"), updated_at=sa.bindparam("b_now")),
                    rows,
                )
                conn.execute(sa.insert(transitions), log_rows)

    def apply_reports(self, reports: Sequence[OrderReport], reason: str, *, adopt: bool = False) -> ApplyResult:
        """Bring the ledger up to what the broker reports, in one transaction: walk each order through every
        state it missed, book new fills and move positions. Unknown orders are adopted only with ``adopt``
        (reconciliation of MEM-prefixed broker orders); otherwise they are an error."""
        now = self._now()
        updated = adopted = n_fills = 0
        conflicts: list[str] = []
        with self._write() as conn:
            current = self._load(conn, [r.client_id for r in reports])
            known_fills = self._fill_ids(conn, list(current))
            child_updates, log_rows, fill_rows = [], [], []
            position_delta: dict[str, float] = {}
            for report in reports:
                record = current.get(report.client_id)
                if record is None:
                    if not adopt:
                        raise ExecutionError(f"order {report.client_id}: reported by the broker but not in the ledger")
                    conn.execute(sa.insert(child_orders), [_adopted_row(report, now)])
                    log_rows.append(
                        {
                            "client_id": report.client_id,
                            "from_state": None,
                            "to_state": "new",
                            "at": now,
                            "reason": "adopted from broker",
                        }
                    )
                    record = _record_from_report(report)
                    current[report.client_id] = record
                    known_fills[report.client_id] = set()
                    adopted += 1
                new = _new_fills(record, report, known_fills.setdefault(record.client_id, set()))
                target = report.state
                if record.state.terminal:
                    if target != record.state or new:
                        conflicts.append(report.client_id)
                        log.warning(
                            "order %s: ledger has %s, broker reports %s (%s new fills); ledger kept",
                            report.client_id,
                            record.state,
                            target,
                            len(new),
                        )
                    continue
                if target is OrderState.PARTIALLY_FILLED and record.state is OrderState.PARTIALLY_FILLED and not new:
                    steps: list[OrderState] = []
                else:
                    try:
                        steps = path(record.state, target, report.client_id)
                    except IllegalTransition:  # a stale broker view (e.g. acknowledged after a fill): keep ours
                        conflicts.append(report.client_id)
                        log.warning("order %s: broker reports %s after %s; ledger kept", report.client_id, target,
                                    record.state)  # fmt: skip
                        continue
                previous = record.state
                for step in steps:
                    log_rows.append(
                        {
                            "client_id": report.client_id,
                            "from_state": previous.value,
                            "to_state": step.value,
                            "at": now,
                            "reason": f"{reason}: {report.reason}" if report.reason else reason,
                        }
                    )
                    previous = step
                filled, average = record.filled_quantity, record.average_price
                for f in new:
                    fill_rows.append(_fill_row(f, record, now))
                    known_fills[record.client_id].add(f.fill_id)
                    average = (((average or 0.0) * filled) + f.price * f.quantity) / (filled + f.quantity)
                    filled += f.quantity
                    position_delta[record.symbol] = (
                        position_delta.get(record.symbol, 0.0) + record.side.sign * f.quantity
                    )
                n_fills += len(new)
                if steps or new or (report.broker_order_id and report.broker_order_id != record.broker_order_id):
                    child_updates.append(
                        {
                            "b_cid": record.client_id,
                            "b_state": previous.value,
                            "b_filled": filled,
                            "b_avg": average,
                            "b_boid": report.broker_order_id or record.broker_order_id,
                            "b_now": now,
                        }
                    )
                    current[record.client_id] = _replace_state(record, previous, filled, average)
                    updated += 1
            if child_updates:
                conn.execute(
                    child_orders.update()
                    .where(child_orders.c.client_id == sa.bindparam("b_cid"))
                    .values(
                        state=sa.bindparam("b_state"),
                        filled_quantity=sa.bindparam("b_filled"),
                        average_price=sa.bindparam("b_avg"),
                        broker_order_id=sa.bindparam("b_boid"),
                        updated_at=sa.bindparam("b_now"),
                    ),
                    child_updates,
                )
            if log_rows:
                conn.execute(sa.insert(transitions), log_rows)
            if fill_rows:
                conn.execute(sa.insert(fills), fill_rows)
            for symbol, delta in position_delta.items():
                self._move_position(conn, symbol, delta, now)
        return ApplyResult(updated, adopted, n_fills, tuple(conflicts))

    @staticmethod
    def _fill_ids(conn: sa.Connection, client_ids: Sequence[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {cid: set() for cid in client_ids}
        for i in range(0, len(client_ids), _CHUNK):
            query = sa.select(fills.c.client_id, fills.c.fill_id).where(
                fills.c.client_id.in_(client_ids[i : i + _CHUNK])
            )
            for cid, fid in conn.execute(query):
                out[cid].add(fid)
        return out

    @staticmethod
    def _move_position(conn: sa.Connection, symbol: str, delta: float, now: dt.datetime) -> None:
        done = conn.execute(
            positions.update()
            .where(positions.c.symbol == symbol)
            .values(quantity=positions.c.quantity + delta, updated_at=now)
        )
        if done.rowcount == 0:
            conn.execute(sa.insert(positions).values(symbol=symbol, quantity=delta, updated_at=now))

    # -- reads ----------------------------------------------------------------------------------

    def positions(self) -> pl.DataFrame:
        """Signed units per symbol from booked fills (``POSITION_SCHEMA``), sorted by symbol."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(positions.c.symbol, positions.c.quantity).order_by(positions.c.symbol)).all()
        return pl.DataFrame([tuple(r) for r in rows], schema=POSITION_SCHEMA, orient="row")

    def exposure(self) -> dict[str, float]:
        """Signed units per symbol once every live order completes: positions plus the unfilled rest of
        every order not in a terminal state (what the gate's position and exposure limits apply to)."""
        out = dict(self.positions().iter_rows())
        for record in self.children(states=LIVE):
            rest = max(record.quantity - record.filled_quantity, 0.0)
            out[record.symbol] = out.get(record.symbol, 0.0) + record.side.sign * rest
        return out

    def orders_frame(self) -> pl.DataFrame:
        """Every child order (for reports and reconciliation checks)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(child_orders).order_by(child_orders.c.client_id)).mappings().all()
        return pl.DataFrame([dict(r) for r in rows], infer_schema_length=None) if rows else pl.DataFrame()

    def transitions_frame(self, client_id: str | None = None) -> pl.DataFrame:
        query = sa.select(transitions).order_by(transitions.c.id)
        if client_id is not None:
            query = query.where(transitions.c.client_id == client_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        schema = {
            "id": pl.Int64(),
            "client_id": pl.String(),
            "from_state": pl.String(),
            "to_state": pl.String(),
            "at": pl.Datetime("us", "UTC"),
            "reason": pl.String(),
        }
        data = [{**dict(r), "at": r["at"].replace(tzinfo=dt.UTC)} for r in rows]
        return pl.DataFrame(data, schema=schema)

    def executed_versions(self, decision_date: dt.date) -> list[str]:
        """Decision versions of ``decision_date`` with parents in the ledger, oldest first."""
        query = (
            sa.select(parent_orders.c.decision_version)
            .where(parent_orders.c.decision_date == decision_date)
            .group_by(parent_orders.c.decision_version)
            .order_by(sa.func.min(parent_orders.c.created_at))
        )
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query).all()]

    def parents_frame(self) -> pl.DataFrame:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(parent_orders).order_by(parent_orders.c.created_at)).mappings().all()
        return pl.DataFrame([dict(r) for r in rows], infer_schema_length=None) if rows else pl.DataFrame()

    def fills_for_training(self) -> pl.DataFrame:
        """Fills with known market features in the slippage model's training shape: ``date``, the ``FEATURES``
        (side as "buy"/"sell"), ``realized_cost_bps``, plus ``symbol`` and ``client_id`` for tracing."""
        query = (
            sa.select(fills)
            .where(
                fills.c.cost_bps.is_not(None)
                & fills.c.size_over_adv.is_not(None)
                & fills.c.sigma.is_not(None)
                & fills.c.spread_bps.is_not(None)
                & fills.c.participation.is_not(None)
                & fills.c.date.is_not(None)
            )
            .order_by(fills.c.date, fills.c.fill_id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        schema = {
            DATE: pl.Date(),
            "size_over_adv": pl.Float64(),
            "spread_bps": pl.Float64(),
            "sigma": pl.Float64(),
            "participation": pl.Float64(),
            "side": pl.String(),
            TARGET: pl.Float64(),
            "symbol": pl.String(),
            "client_id": pl.String(),
        }
        assert tuple(k for k in schema if k in FEATURES) == FEATURES
        data = [
            {
                DATE: r["date"],
                **{k: r[k] for k in FEATURES},
                TARGET: r["cost_bps"],
                "symbol": r["symbol"],
                "client_id": r["client_id"],
            }
            for r in rows
        ]
        return pl.DataFrame(data, schema=schema)


def _replace_state(
    record: ChildRecord, state: OrderState, filled: float | None = None, average: float | None = None
) -> ChildRecord:
    changes: dict[str, Any] = {"state": state}
    if filled is not None:
        changes.update(filled_quantity=filled, average_price=average)
    return replace(record, **changes)


def _parent_row(p: Order, status: str, rejection: Rejection | None, now: dt.datetime) -> dict[str, Any]:
    return {
        "parent_id": p.parent_id,
        "decision_version": p.decision_version,
        "decision_date": p.decision_date,
        "symbol": p.symbol,
        "side": p.side.value,
        "quantity": p.quantity,
        "lot_size": p.lot_size,
        "reference_price": p.reference_price,
        "notional": p.notional,
        "current_position": p.current_position,
        "target_position": p.target_position,
        "expected_cost_bps": p.expected_cost_bps if math.isfinite(p.expected_cost_bps) else None,
        "schedule": str(p.schedule),
        "n_slices": p.n_slices,
        "binding_limit": p.binding_limit,
        "status": status,
        "reject_limit": rejection.limit if rejection else None,
        "reject_amount": rejection.amount if rejection and math.isfinite(rejection.amount) else None,
        "reject_threshold": rejection.threshold if rejection else None,
        "reject_message": rejection.message if rejection else None,
        "created_at": now,
    }


def _child_row(c: ChildOrder, state: OrderState, now: dt.datetime) -> dict[str, Any]:
    return {
        "client_id": c.client_id,
        "parent_id": c.parent_id,
        "slice_index": c.slice_index,
        "symbol": c.symbol,
        "side": c.side.value,
        "quantity": c.quantity,
        "reference_price": c.reference_price,
        "decision_date": c.decision_date,
        "expected_cost_bps": c.expected_cost_bps,
        "state": state.value,
        "filled_quantity": 0.0,
        "average_price": None,
        "broker_order_id": None,
        "adopted": False,
        "created_at": now,
        "updated_at": now,
    }


def _adopted_row(report: OrderReport, now: dt.datetime) -> dict[str, Any]:
    return {
        "client_id": report.client_id,
        "parent_id": None,
        "slice_index": None,
        "symbol": report.symbol,
        "side": report.side.value,
        "quantity": report.quantity,
        "reference_price": None,
        "decision_date": None,
        "expected_cost_bps": None,
        "state": OrderState.NEW.value,
        "filled_quantity": 0.0,
        "average_price": None,
        "broker_order_id": report.broker_order_id,
        "adopted": True,
        "created_at": now,
        "updated_at": now,
        "sent_at": now,  # the broker holds it
    }


def _record_from_report(report: OrderReport) -> ChildRecord:
    return ChildRecord(
        report.client_id,
        None,
        None,
        report.symbol,
        report.side,
        report.quantity,
        None,
        None,
        None,
        OrderState.NEW,
        0.0,
        None,
        report.broker_order_id,
        True,
        dt.datetime.now(dt.UTC),
    )


def _new_fills(record: ChildRecord, report: OrderReport, known: set[str]) -> list[Fill]:
    """Fills of ``report`` the ledger has not booked. A broker reporting only cumulative figures gets one
    synthetic fill for the increase, priced so the ledger's average matches the broker's."""
    if report.fills:
        return [f for f in report.fills if f.fill_id not in known]
    delta = report.filled_quantity - record.filled_quantity
    if delta <= 1e-12 * max(1.0, report.quantity) or report.average_price is None:
        return []
    price = (
        report.average_price * report.filled_quantity - (record.average_price or 0.0) * record.filled_quantity
    ) / delta
    fill_id = f"{report.client_id}:{report.filled_quantity:.12g}"
    return [] if fill_id in known else [Fill(fill_id, report.client_id, delta, price)]


def _fill_row(f: Fill, record: ChildRecord, now: dt.datetime) -> dict[str, Any]:
    return {
        "fill_id": f.fill_id,
        "client_id": record.client_id,
        "symbol": record.symbol,
        "side": record.side.value,
        "quantity": f.quantity,
        "price": f.price,
        "date": f.date,
        "cost_bps": f.cost_bps,
        "size_over_adv": f.size_over_adv,
        "spread_bps": f.spread_bps,
        "sigma": f.sigma,
        "participation": f.participation,
        "recorded_at": now,
    }
