"""Process-level helpers for the execution concurrency tests: targets for ``multiprocessing`` (spawn) children,
a broker wrapper counting every submit that reaches the exchange (shared by processes through a SQLite file),
and the randomized multi-process fault scenarios."""

from __future__ import annotations

import datetime as dt
import functools
import os
import random
import sqlite3
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
from execution_support import DECISION_DATE, bars, order_frame

from mem_pipeline.execution.breaker import BreakerConfig, CircuitBreaker
from mem_pipeline.execution.brokers.faults import FaultRates, FaultyBroker
from mem_pipeline.execution.brokers.paper import PaperBroker, PaperConfig
from mem_pipeline.execution.engine import execute
from mem_pipeline.execution.errors import LedgerBusy, SimulatedCrash
from mem_pipeline.execution.gate import GateConfig, PreTradeGate
from mem_pipeline.execution.ids import client_order_id
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.execution.orders import ChildOrder, OrderReport
from mem_pipeline.execution.reconcile import reconcile
from mem_pipeline.execution.states import OrderState

LOOSE = GateConfig(max_order_notional=1e9, max_position_notional=1e9, max_gross_exposure=1e12)
SUBMITS_FILE = "submits.sqlite"
T = TypeVar("T")


class CountingBroker:
    """Wraps the exchange (a ``PaperBroker``): every ``submit`` that reaches it is recorded, per client id and
    process, in a SQLite file all processes share (committed before the order is passed on)."""

    name = "counting"

    def __init__(self, inner: PaperBroker, path: Path) -> None:
        self.inner = inner
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self._db.execute("CREATE TABLE IF NOT EXISTS submits (client_id TEXT NOT NULL, pid INTEGER NOT NULL)")

    def submit(self, order: ChildOrder) -> OrderReport:
        self._db.execute("INSERT INTO submits VALUES (?, ?)", (order.client_id, os.getpid()))
        return self.inner.submit(order)

    def lookup(self, client_id: str, symbol: str) -> OrderReport | None:
        return self.inner.lookup(client_id, symbol)

    def orders(self, symbols: Iterable[str] | None = None) -> list[OrderReport]:
        return self.inner.orders(symbols)

    def cancel(self, client_id: str, symbol: str) -> OrderReport:
        return self.inner.cancel(client_id, symbol)

    def fill_now(self, client_id: str, fraction: float, price: float | None = None) -> OrderReport:
        return self.inner.fill_now(client_id, fraction, price)

    def close(self) -> None:
        self._db.close()


def submit_counts(path: Path) -> dict[str, int]:
    """Submits per client id recorded by every ``CountingBroker`` writing to ``path``."""
    if not path.exists():
        return {}
    with sqlite3.connect(path, timeout=30.0) as db:
        rows = db.execute("SELECT client_id, COUNT(*) FROM submits GROUP BY client_id").fetchall()
    return {cid: n for cid, n in rows}


def when_free(action: Callable[[], T], attempts: int = 2000, pause: float = 0.005) -> T | None:
    """``action()``, retried while another executor holds the run lock; None if it never got the lock."""
    for _ in range(attempts):
        try:
            return action()
        except LedgerBusy:
            time.sleep(pause)
    return None


# -- targets of spawned processes --------------------------------------------------------------------------


def race_execute(url: str, root: str, frame: pl.DataFrame, pause_s: float, barrier: Any, out: Any) -> None:
    """One executor: wait for the others, then ``execute`` ``frame`` once it gets the lock (pausing
    ``pause_s`` between writing its plan and sending, the window in which a second executor did harm)."""
    ledger, paper = Ledger.open(url), PaperBroker(Path(root) / "paper")
    broker = CountingBroker(paper, Path(root) / SUBMITS_FILE)

    def hook(step: str) -> None:
        if step == "planned":
            time.sleep(pause_s)

    barrier.wait()
    result = when_free(lambda: execute(frame, ledger, broker, PreTradeGate(LOOSE), CircuitBreaker(), crash_hook=hook))
    out.put((os.getpid(), None if result is None else result.submitted))
    broker.close()
    paper.close()
    ledger.close()


def hammer_lock(url: str, marker: str, rounds: int, barrier: Any, out: Any) -> None:
    """Take and release the run lock ``rounds`` times; inside, create ``marker`` exclusively: a marker that
    already exists means another process is inside too (an overlap)."""
    ledger = Ledger.open(url)
    owner = f"hammer-{os.getpid()}"
    acquired = overlaps = 0
    barrier.wait()
    for _ in range(rounds):
        try:
            with ledger.lock(owner, ttl_seconds=60):
                acquired += 1
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    overlaps += 1
                    continue
                time.sleep(0.005)
                os.close(fd)
                os.unlink(marker)
        except LedgerBusy:
            pass
    ledger.close()
    out.put((acquired, overlaps))


def hold_lock(url: str, ttl_seconds: float, held: Any, check: Any, out: Any) -> None:
    """Take the lock (real clock), say so, wait, then report whether refreshing it still works."""
    ledger = Ledger.open(url)
    ledger.acquire_lock("holder", ttl_seconds)
    held.set()
    check.wait(60)
    try:
        ledger.refresh_lock("holder", ttl_seconds)
        out.put("still held")
    except LedgerBusy as exc:
        out.put(f"lost: {exc}")
    ledger.close()


def open_fresh(urls: list[str], barrier: Any, out: Any) -> None:
    """Open each (brand-new) ledger of ``urls`` together with the other processes (barrier before each);
    report "ok" or the first error."""
    try:
        for url in urls:
            barrier.wait()
            ledger = Ledger.open(url)
            ledger.record_plan([])
            ledger.close()
        out.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        barrier.abort()
        out.put(f"{type(exc).__name__}: {exc}")


# -- randomized multi-process fault scenarios --------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """One scenario: its decision frames, fault rates and how many executors race."""

    seed: int
    frames: tuple[pl.DataFrame, ...]
    rates: FaultRates
    executors: int


def plan(seed: int) -> Plan:
    rng = random.Random(seed)
    symbols = [f"S{i}" for i in range(rng.randint(1, 4))]
    frames = tuple(
        order_frame(
            f"mp{seed}-{k}",
            symbols,
            quantity=[rng.randint(1, 12) for _ in symbols],
            side=[rng.choice(["buy", "sell"]) for _ in symbols],
            schedule=[rng.choice(["twap", "vwap", "almgren_chriss"]) for _ in symbols],
            n_slices=[rng.randint(1, 4) for _ in symbols],
        )
        for k in range(rng.randint(1, 2))
    )
    weights = [rng.random() for _ in range(5)]
    scale = rng.uniform(0.1, 0.7) / sum(weights)
    rates = FaultRates(*(w * scale for w in weights), lookup_timeout=rng.uniform(0, 0.3))
    return Plan(seed, frames, rates, rng.choice([2, 3]))


def _market(p: Plan) -> pl.DataFrame:
    symbols = p.frames[0]["symbol"].to_list()
    return bars(symbols, start=DECISION_DATE - dt.timedelta(days=25), n_days=30, seed=p.seed)


def run_executor(p: Plan, worker: int, root: Path, url: str) -> dict[str, int]:
    """One executor process's part of a scenario: 1-3 lifetimes, each may die at a random step; faulty
    broker, duplicate ticks, paper fills booked under the run lock between lifetimes."""
    from mem_pipeline.execution.fills import book_fills

    rng = random.Random(p.seed * 7919 + worker)
    stats = {"runs": 0, "crashes": 0, "busy": 0}
    for attempt in range(rng.randint(1, 3)):
        ledger = Ledger.open(url)
        paper = PaperBroker(root / "paper", PaperConfig(participation_cap=0.004))
        counting = CountingBroker(paper, root / SUBMITS_FILE)
        broker = FaultyBroker(counting, p.rates, seed=p.seed * 1000 + worker * 10 + attempt)
        breaker = CircuitBreaker(BreakerConfig(failures=rng.randint(1, 4), cooldown_seconds=0))
        crash_at = rng.randint(1, 30) if rng.random() < 0.6 else None
        steps = [0]

        def hook(step: str, crash_at: int | None = crash_at, steps: list[int] = steps) -> None:
            steps[0] += 1
            if crash_at is not None and steps[0] == crash_at:
                raise SimulatedCrash(step)

        owner = f"w{worker}-{attempt}-{os.getpid()}"
        try:
            for frame in p.frames:
                for _ in range(rng.choice([1, 1, 2])):  # duplicate sensor ticks
                    action = functools.partial(
                        execute, frame, ledger, broker, PreTradeGate(LOOSE), breaker, crash_hook=hook, lock_owner=owner
                    )
                    done = when_free(action)
                    stats["runs" if done is not None else "busy"] += 1
        except SimulatedCrash:
            stats["crashes"] += 1
        if rng.random() < 0.4:  # the market moves on: paper fills, booked under the lock
            day = DECISION_DATE + dt.timedelta(days=attempt + 1)
            when_free(functools.partial(book_fills, ledger, paper, _market(p).filter(pl.col("date") <= day)))
        counting.close()
        paper.close()
        ledger.close()
    return stats


def check_scenario(p: Plan, root: Path, url: str) -> dict[str, int]:
    """A clean final run of every decision, then the invariants: no duplicate submit, nothing lost,
    ledger = broker (states, fills, positions). Returns counts for the report."""
    ledger, paper = Ledger.open(url), PaperBroker(root / "paper", PaperConfig(participation_cap=0.004))
    counting = CountingBroker(paper, root / SUBMITS_FILE)
    for frame in p.frames:
        execute(frame, ledger, counting, PreTradeGate(LOOSE), CircuitBreaker())
    reconcile(ledger, paper)
    at_broker = {r.client_id: r for r in paper.orders()}
    children = {c.client_id: c for c in ledger.children()}
    counts = submit_counts(root / SUBMITS_FILE)
    seed = p.seed
    assert paper.duplicate_attempts == 0, seed
    assert max(counts.values(), default=0) <= 1, (seed, {k: v for k, v in counts.items() if v > 1})
    assert set(at_broker) <= set(counts), seed  # every order at the exchange came through a counted submit
    for frame in p.frames:
        for row in frame.iter_rows(named=True):
            ids = {client_order_id(row["decision_version"], row["symbol"], j) for j in range(row["n_slices"])}
            mine = [c for cid, c in children.items() if cid in ids]
            assert sum(c.quantity for c in mine) == row["quantity"], seed
    for cid, c in children.items():  # nothing lost: at the broker, or refused by it
        if cid not in at_broker:
            assert c.state is OrderState.REJECTED, (seed, cid, c.state)
    assert set(at_broker) <= set(children), seed
    for cid, r in at_broker.items():
        assert (children[cid].state, children[cid].filled_quantity) == (r.state, r.filled_quantity), (seed, cid)
    signed: dict[str, float] = {}
    for r in at_broker.values():
        signed[r.symbol] = signed.get(r.symbol, 0.0) + r.side.sign * r.filled_quantity
    positions = dict(ledger.positions().iter_rows())
    for symbol, quantity in signed.items():
        assert abs(positions.get(symbol, 0.0) - quantity) < 1e-9, (seed, symbol)
    out = {"orders": len(at_broker), "filled": sum(1 for r in at_broker.values() if r.filled_quantity > 0)}
    counting.close()
    paper.close()
    ledger.close()
    return out


def rendezvous(folder: Path, worker: int, parties: int, timeout_s: float = 300.0) -> None:
    """Wait until ``parties`` workers have arrived at ``folder`` (a file each): a barrier with no shared state
    that could break, so a worker that really fails is the only one that reports an error."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"arrived-{worker}").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(folder.glob("arrived-*"))) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{folder}: only {len(list(folder.glob('arrived-*')))} of {parties} arrived")
        time.sleep(0.005)


def fault_worker(worker: int, n_workers: int, seeds: list[int], root: str, urls: dict[int, str], out: Any) -> None:
    """One of ``n_workers`` long-lived processes: for each scenario, start together with the others (barrier)
    and play executor ``worker`` if the scenario has that many; then check a share of the scenarios."""
    totals = {"scenarios": 0, "executors": 0, "runs": 0, "crashes": 0, "busy": 0, "orders": 0, "filled": 0}
    try:
        for seed in seeds:
            p = plan(seed)
            rendezvous(Path(root) / "sync" / str(seed), worker, n_workers)
            if worker < p.executors:
                stats = run_executor(p, worker, Path(root) / f"s{seed}", urls[seed])
                totals["executors"] += 1
                for key in ("runs", "crashes", "busy"):
                    totals[key] += stats[key]
        rendezvous(Path(root) / "sync" / "checks", worker, n_workers)
        for seed in seeds[worker::n_workers]:
            checked = check_scenario(plan(seed), Path(root) / f"s{seed}", urls[seed])
            totals["scenarios"] += 1
            totals["orders"] += checked["orders"]
            totals["filled"] += checked["filled"]
        out.put(("ok", totals))
    except BaseException as exc:  # noqa: BLE001 - reported to the test process
        out.put(("error", f"worker {worker}: " + "".join(traceback.format_exception(exc))[-6000:]))
