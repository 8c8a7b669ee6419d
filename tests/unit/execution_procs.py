"""Process-level helpers for the execution concurrency tests: targets for ``multiprocessing`` (spawn) children,
a broker wrapper counting every submit that reaches the exchange (shared by processes through a SQLite file),
and the randomized multi-process fault scenarios."""

from __future__ import annotations

import multiprocessing
import os
import queue
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import pytest

from mem_pipeline.execution.breaker import CircuitBreaker
from mem_pipeline.execution.brokers.paper import PaperBroker
from mem_pipeline.execution.engine import ExecutionResult, SecondVersionRefused, execute
from mem_pipeline.execution.errors import LedgerBusy
from mem_pipeline.execution.gate import GateConfig, PreTradeGate
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.execution.orders import ChildOrder, OrderReport

SPAWN = multiprocessing.get_context("spawn")


def run_processes(target: Callable[..., None], args: Sequence[tuple[Any, ...]], timeout: float = 120) -> list[Any]:
    """Start one spawned process per ``args`` (each gets the result queue last), wait, return their results."""
    out = SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(*a, out)) for a in args]
    for p in procs:
        p.start()
    results = []
    deadline = time.monotonic() + timeout
    try:
        for _ in procs:
            results.append(out.get(timeout=max(deadline - time.monotonic(), 1)))
    except queue.Empty:
        codes = [p.exitcode for p in procs]
        pytest.fail(f"only {len(results)} of {len(procs)} processes reported (exit codes {codes}): {results}")
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    return results


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


def race_execute(
    url: str, root: str, frame: pl.DataFrame, pause_s: float, one_version_per_day: bool, barrier: Any, out: Any
) -> None:
    """One executor: wait for the others, then ``execute`` ``frame`` once it gets the lock (pausing
    ``pause_s`` between writing its plan and sending, the window in which a second executor did harm).
    Reports its submits, or ``"refused"`` when the day was already executed under another version."""
    ledger, paper = Ledger.open(url), PaperBroker(Path(root) / "paper")
    broker = CountingBroker(paper, Path(root) / SUBMITS_FILE)

    def hook(step: str) -> None:
        if step == "planned":
            time.sleep(pause_s)

    def run() -> ExecutionResult:
        return execute(
            frame,
            ledger,
            broker,
            PreTradeGate(LOOSE),
            CircuitBreaker(),
            crash_hook=hook,
            one_version_per_day=one_version_per_day,
        )

    barrier.wait()
    try:
        result = when_free(run)
    except SecondVersionRefused:
        out.put((os.getpid(), "refused"))
    else:
        out.put((os.getpid(), None if result is None else result.submitted))
    broker.close()
    paper.close()
    ledger.close()


def hammer_lock(url: str, marker: str, wins: int, barrier: Any, out: Any, deadline_s: float = 90.0) -> None:
    """Take and release the run lock until this process has held it ``wins`` times (or ``deadline_s`` passed);
    inside, create ``marker`` exclusively: a marker that already exists means another process is inside too
    (an overlap). Reports (times held, overlaps)."""
    ledger = Ledger.open(url)
    owner = f"hammer-{os.getpid()}"
    acquired = overlaps = 0
    barrier.wait()
    deadline = time.monotonic() + deadline_s
    while acquired < wins and time.monotonic() < deadline:
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
            time.sleep(0.001)
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


def open_fresh(urls: list[str], paper_root: str, barrier: Any, out: Any) -> None:
    """Open each (brand-new) ledger of ``urls``, and a brand-new paper exchange beside it, together with the
    other processes (barrier before each); report "ok" or the first error."""
    try:
        for i, url in enumerate(urls):
            barrier.wait()
            ledger = Ledger.open(url)
            ledger.record_plan([])
            ledger.close()
            PaperBroker(Path(paper_root) / f"paper{i}").close()
        out.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        barrier.abort()
        out.put(f"{type(exc).__name__}: {exc}")


# -- randomized multi-process fault scenarios --------------------------------------------------------------
