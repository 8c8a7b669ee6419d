"""The ledger's run lock and schema under real concurrency: executors in separate processes (spawn) racing on
one ledger and one paper exchange, the sent marker, fills booked under the lock, and 200+ randomized
multi-process fault scenarios."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from execution_procs import (
    LOOSE,
    SPAWN,
    SUBMITS_FILE,
    CountingBroker,
    hammer_lock,
    hold_lock,
    open_fresh,
    race_execute,
    run_processes,
    submit_counts,
)
from execution_support import DECISION_DATE, bars, order_frame

from mem_pipeline.execution.breaker import CircuitBreaker
from mem_pipeline.execution.brokers.paper import PaperBroker, PaperConfig
from mem_pipeline.execution.engine import execute
from mem_pipeline.execution.errors import LedgerBusy
from mem_pipeline.execution.gate import PreTradeGate
from mem_pipeline.execution.ids import client_order_id
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.execution.orders import ChildOrder, OrderReport
from mem_pipeline.execution.reconcile import reconcile
from mem_pipeline.execution.states import OrderState

# -- the run lock -----------------------------------------------------------------------------------------


def test_the_run_lock_admits_one_process_at_a_time(tmp_path, ledger_urls) -> None:
    url = ledger_urls()
    Ledger.open(url).close()
    barrier = SPAWN.Barrier(3)
    results = run_processes(hammer_lock, [(url, str(tmp_path / "inside"), 30, barrier)] * 3)
    acquired = sum(a for a, _ in results)
    overlaps = sum(o for _, o in results)
    assert [a for a, _ in results] == [30, 30, 30]  # each process held it 30 times: it changed hands
    assert overlaps == 0, f"{overlaps} times two processes held the lock at once ({acquired} acquisitions)"


def test_racing_executor_processes_send_every_child_exactly_once(tmp_path, ledger_urls) -> None:
    url = ledger_urls()
    Ledger.open(url).close()
    PaperBroker(tmp_path / "paper").close()
    CountingBroker(PaperBroker(tmp_path / "paper"), tmp_path / SUBMITS_FILE).close()
    frame = order_frame("v1", ["A", "B", "C"], quantity=[6, 4, 2], n_slices=[3, 2, 2])
    barrier = SPAWN.Barrier(3)
    results = run_processes(race_execute, [(url, str(tmp_path), frame, 0.3, False, barrier)] * 3)
    expected = {client_order_id("v1", s, j) for s, n in (("A", 3), ("B", 2), ("C", 2)) for j in range(n)}
    counts = submit_counts(tmp_path / SUBMITS_FILE)
    assert counts == dict.fromkeys(expected, 1), counts  # 0 duplicate submits, 0 lost orders
    assert sorted(n for _, n in results) == [0, 0, 7]  # one executor sent everything, the others nothing
    ledger, paper = Ledger.open(url), PaperBroker(tmp_path / "paper")
    assert paper.duplicate_attempts == 0 and set(paper.client_ids()) == expected
    at_broker = {r.client_id: r.state for r in paper.orders()}
    assert {c.client_id: c.state for c in ledger.children()} == at_broker
    assert set(at_broker.values()) == {OrderState.ACKNOWLEDGED}


def test_two_versions_of_one_day_racing_in_two_processes_send_one_version_only(tmp_path, ledger_urls) -> None:
    url = ledger_urls()
    Ledger.open(url).close()
    CountingBroker(PaperBroker(tmp_path / "paper"), tmp_path / SUBMITS_FILE).close()
    frames = [order_frame(version, ["A", "B"], quantity=[4, 2], n_slices=[2, 1]) for version in ("v1", "v2")]
    barrier = SPAWN.Barrier(2)
    results = run_processes(race_execute, [(url, str(tmp_path), f, 0.3, True, barrier) for f in frames])
    assert sorted(str(n) for _, n in results) == ["3", "refused"]  # one day, one version: the other is refused
    sent = {cid for cid, n in submit_counts(tmp_path / SUBMITS_FILE).items() if n}
    by_version = [{client_order_id(v, s, j) for s, n in (("A", 2), ("B", 1)) for j in range(n)} for v in ("v1", "v2")]
    assert sent in by_version  # exactly the children of one version, each once
    ledger = Ledger.open(url)
    assert len(ledger.executed_versions(frames[0]["decision_date"][0])) == 1


def test_a_held_lock_refuses_other_processes_until_its_lease_expires(tmp_path, ledger_urls) -> None:
    url = ledger_urls()
    Ledger.open(url).close()
    held, check, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    holder = SPAWN.Process(target=hold_lock, args=(url, 30.0, held, check, out))
    holder.start()
    try:
        assert held.wait(60)
        now = [dt.datetime.now(dt.UTC)]
        ledger = Ledger.open(url, clock=lambda: now[0])
        with pytest.raises(LedgerBusy, match="held by 'holder'"):
            ledger.acquire_lock("me")
        now[0] += dt.timedelta(seconds=25)  # within the 30 s lease
        with pytest.raises(LedgerBusy, match="held by 'holder'"):
            ledger.acquire_lock("me")
        now[0] += dt.timedelta(seconds=10)  # past it: the holder counts as dead
        with ledger.lock("me"):
            check.set()
            assert out.get(timeout=60).startswith("lost: ledger lock 'execute' is no longer held by 'holder'")
    finally:
        check.set()
        holder.join(10)


def test_a_lost_lock_stops_sending_before_the_next_send_not_only_at_a_flush(tmp_path, ledger_urls) -> None:
    """A send outlives the lease (a slow exchange) and another executor takes the expired lock over: the
    next send is stopped, though no flush came in between."""
    now = [dt.datetime(2024, 1, 2, 15, tzinfo=dt.UTC)]
    url = ledger_urls()
    ledger, paper = Ledger.open(url, clock=lambda: now[0]), PaperBroker(tmp_path / "paper")
    other = Ledger.open(url, clock=lambda: now[0])

    def slow_exchange(step: str) -> None:
        if step == "after_send":
            now[0] += dt.timedelta(seconds=121)
            other.acquire_lock("other", 120)

    frame = order_frame("v1", ["A"], quantity=4, n_slices=4)
    with pytest.raises(LedgerBusy, match="no longer held"):
        execute(frame, ledger, paper, PreTradeGate(LOOSE), CircuitBreaker(), flush_every=1000, crash_hook=slow_exchange)
    assert len(paper.client_ids()) == 1  # the second send was stopped


def test_a_long_run_extends_its_lease_before_it_runs_out(tmp_path, ledger_urls) -> None:
    """Each send takes 40 s of a 120 s lease: the lock is extended on the way, so nobody can take it over."""
    now = [dt.datetime(2024, 1, 2, 15, tzinfo=dt.UTC)]
    url = ledger_urls()
    ledger, paper = Ledger.open(url, clock=lambda: now[0]), PaperBroker(tmp_path / "paper")
    other = Ledger.open(url, clock=lambda: now[0])
    refused = []

    def slow_exchange(step: str) -> None:
        if step == "after_send":
            now[0] += dt.timedelta(seconds=40)
            try:
                other.acquire_lock("other", 120)
            except LedgerBusy:
                refused.append(now[0])

    frame = order_frame("v1", ["A"], quantity=8, n_slices=8)
    result = execute(
        frame, ledger, paper, PreTradeGate(LOOSE), CircuitBreaker(), flush_every=1000, crash_hook=slow_exchange
    )
    assert result.submitted == 8 and len(refused) == 8


class Unlisted:
    """The paper exchange, except that its listing shows nothing and lookups can be made to fail."""

    name = "unlisted"

    def __init__(self, inner: PaperBroker, lookups_fail: bool) -> None:
        self.inner, self.lookups_fail, self.lookups, self.submits = inner, lookups_fail, 0, 0

    def submit(self, order: ChildOrder) -> OrderReport:
        self.submits += 1
        return self.inner.submit(order)

    def lookup(self, client_id: str, symbol: str) -> OrderReport | None:
        self.lookups += 1
        if self.lookups_fail:
            raise TimeoutError("lookup timed out")
        return self.inner.lookup(client_id, symbol)

    def orders(self, symbols: Any = None) -> list[OrderReport]:
        return []

    def cancel(self, client_id: str, symbol: str) -> OrderReport:
        return self.inner.cancel(client_id, symbol)


def test_an_order_marked_sent_is_resent_only_after_a_lookup_proves_it_absent(
    tmp_path, ledger_urls, monkeypatch
) -> None:
    from mem_pipeline.execution import engine

    monkeypatch.setattr(engine, "MARK_CHUNK", 1)  # one child marked at a time: A marked, B not yet
    ledger, paper = Ledger.open(ledger_urls()), PaperBroker(tmp_path / "paper")
    frame = order_frame("v1", ["A", "B"], quantity=2, n_slices=1)
    a, b = client_order_id("v1", "A", 0), client_order_id("v1", "B", 0)
    crash = [True]

    def die_after_marking(step: str) -> None:  # crash with A marked sent but not yet at the exchange
        if step == "marked_sent" and crash[0]:
            crash[0] = False
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(frame, ledger, paper, PreTradeGate(LOOSE), CircuitBreaker(), crash_hook=die_after_marking)
    assert ledger.child(a).sent_at is not None and ledger.child(b).sent_at is None
    assert (ledger.child(a).state, ledger.child(b).state) == (OrderState.NEW, OrderState.NEW)

    blind = Unlisted(paper, lookups_fail=True)  # the listing lacks A and its lookup fails: never resent
    rec = reconcile(ledger, blind)
    assert rec.unresolved == (a,) and [r.client_id for r in rec.absent] == [b]
    assert blind.lookups == 1  # B was never sent by anyone: no lookup needed
    result = execute(frame, ledger, blind, PreTradeGate(LOOSE), CircuitBreaker())
    assert (result.submitted, result.reconcile.unresolved) == (1, (a,)) and paper.client_ids() == [b]

    seeing = Unlisted(paper, lookups_fail=False)  # now the lookup proves A absent: sent, exactly once
    assert execute(frame, ledger, seeing, PreTradeGate(LOOSE), CircuitBreaker()).resent == 1
    assert sorted(paper.client_ids()) == sorted([a, b]) and paper.duplicate_attempts == 0
    assert {c.state for c in ledger.children()} == {OrderState.ACKNOWLEDGED}


# -- a brand-new ledger opened by several processes -------------------------------------------------------


def test_processes_opening_a_brand_new_ledger_and_exchange_together_all_succeed(tmp_path, ledger_urls) -> None:
    urls = [ledger_urls(f"fresh{i}") for i in range(30)]  # each in a folder nobody created yet
    barrier = SPAWN.Barrier(5)
    assert run_processes(open_fresh, [(urls, str(tmp_path / "exchanges"), barrier)] * 5) == ["ok"] * 5


def test_a_ledger_from_before_the_sent_marker_gains_it_and_counts_old_orders_as_sent(tmp_path, ledger_urls) -> None:
    import sqlalchemy as sa

    url = ledger_urls()
    ledger = Ledger.open(url)
    execute(order_frame("v1", ["A"], quantity=2, n_slices=2), ledger, PaperBroker(tmp_path / "p"), PreTradeGate(LOOSE),
            CircuitBreaker())  # fmt: skip
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE child_orders DROP COLUMN sent_at")
    ledger.close()
    again = Ledger.open(url)
    assert all(c.sent_at is not None for c in again.children())
    assert "sent_at" in {c["name"] for c in sa.inspect(again.engine).get_columns("child_orders")}


# -- fills under the run lock -----------------------------------------------------------------------------


def test_fills_are_booked_only_under_the_run_lock(tmp_path, ledger_urls) -> None:
    from mem_pipeline.execution.fills import book_fills

    ledger = Ledger.open(ledger_urls())
    paper = PaperBroker(tmp_path / "paper", PaperConfig(participation_cap=0.05))
    execute(order_frame("v1", ["A"], quantity=30, n_slices=1), ledger, paper, PreTradeGate(LOOSE), CircuitBreaker())
    market = bars(["A"], start=DECISION_DATE - dt.timedelta(days=25), n_days=30)
    with ledger.lock("an executor"):
        with pytest.raises(LedgerBusy, match="held by 'an executor'"):
            book_fills(ledger, paper, market)
    assert ledger.positions().is_empty() and paper.orders()[0].filled_quantity == 0  # nothing moved
    booked = book_fills(ledger, paper, lambda: market)
    assert booked.broker_fills == 1 and booked.reconcile.new_fills == 1  # 5% of 1000 a bar: one bar fills 30
    assert dict(ledger.positions().iter_rows()) == {"A": 30.0} and paper.orders()[0].filled_quantity == 30


def test_the_order_fills_asset_holds_the_run_lock(tmp_path) -> None:
    import dagster as dg

    from assets.defs.execution.assets import order_fills
    from assets.resources import BrokerResource, LakeResource, LedgerResource, MarketDataResource
    from mem_pipeline.core.paths import Paths
    from mem_pipeline.core.schemas import BAR_SCHEMA
    from mem_pipeline.ingest import lake as lake_io

    data, decided = tmp_path / "data", dt.date(2018, 12, 18)  # inside the DAILY partitions
    paths = Paths(data)
    market = bars(["A"], start=decided - dt.timedelta(days=25), n_days=30)
    market = market.with_columns(source_file=pl.lit("t"), source_row=pl.int_range(pl.len())).cast(BAR_SCHEMA)
    lake_io.write_partitions(market.select(list(BAR_SCHEMA)), paths.bars("synthetic"))
    ledger = Ledger.open(None, paths=paths)
    paper = PaperBroker(paths.ledger / "paper")
    frame = order_frame("v1", ["A"], quantity=30, n_slices=1, decision_date=decided)
    execute(frame, ledger, paper, PreTradeGate(LOOSE), CircuitBreaker())
    resources = {
        "lake": LakeResource(data_dir=str(data)),
        "market": MarketDataResource(source="synthetic"),
        "broker": BrokerResource(),
        "ledger": LedgerResource(),
    }
    day = (decided + dt.timedelta(days=2)).isoformat()
    with ledger.lock("an executor"):
        busy = dg.materialize([order_fills], resources=resources, partition_key=day, raise_on_error=False)
    assert not busy.success
    assert ledger.positions().is_empty() and paper.orders()[0].filled_quantity == 0
    assert dg.materialize([order_fills], resources=resources, partition_key=day).success
    assert dict(ledger.positions().iter_rows()) == {"A": paper.orders()[0].filled_quantity} != {"A": 0}


# -- randomized multi-process fault scenarios ------------------------------------------------------------
