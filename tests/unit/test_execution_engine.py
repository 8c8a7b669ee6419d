"""execute(): idempotency, reconciliation, gate and breaker in the loop, fills back to the slippage model, and
200+ randomized scenarios of broker faults, process deaths, duplicate ticks and run retries."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from execution_support import (
    DECISION_DATE,
    assert_exactly_once,
    bars,
    order_frame,
    random_decisions,
    random_fault_rates,
)

from mem_pipeline.core.orders import Side
from mem_pipeline.core.params import section
from mem_pipeline.core.paths import Paths
from mem_pipeline.execution.breaker import BreakerConfig, BreakerState, CircuitBreaker
from mem_pipeline.execution.brokers.faults import FaultRates, FaultyBroker
from mem_pipeline.execution.brokers.paper import PaperBroker, PaperConfig
from mem_pipeline.execution.engine import ExecutionConfig, execute
from mem_pipeline.execution.errors import BrokerAmbiguous, LedgerBusy, SimulatedCrash
from mem_pipeline.execution.gate import GateConfig, PreTradeGate
from mem_pipeline.execution.ids import client_order_id
from mem_pipeline.execution.ledger import Ledger, default_url
from mem_pipeline.execution.orders import ChildOrder
from mem_pipeline.execution.reconcile import reconcile
from mem_pipeline.execution.states import OrderState
from mem_pipeline.models.slippage import DATE, FEATURES, TARGET, fit_square_root_law, order_features

LOOSE = GateConfig(max_order_notional=1e9, max_position_notional=1e9, max_gross_exposure=1e12)
LEGAL_NEXT = {
    "new": {"submitted", "cancelled", "rejected", "expired"},
    "submitted": {"acknowledged", "partially_filled", "filled", "cancelled", "rejected", "expired"},
    "acknowledged": {"partially_filled", "filled", "cancelled", "rejected", "expired"},
    "partially_filled": {"partially_filled", "filled", "cancelled", "expired"},
}


#: The ledger URLs of the running test: every test here runs on SQLite and on PostgreSQL (``ledger_urls``).
URLS: Callable[[str], str] = lambda name: ""  # noqa: E731 - replaced by the fixture below


@pytest.fixture(autouse=True)
def _backend(ledger_urls: Callable[[str], str]) -> None:
    global URLS
    URLS = ledger_urls


def world(tmp_path: Path, name: str = "w") -> tuple[Ledger, PaperBroker]:
    return Ledger.open(URLS(name)), PaperBroker(tmp_path / name / "paper")


def run(frame: pl.DataFrame, ledger: Ledger, broker, gate: PreTradeGate | None = None, **kw):
    return execute(frame, ledger, broker, gate or PreTradeGate(LOOSE), kw.pop("breaker", CircuitBreaker()), **kw)


def test_execute_sends_every_child_once_and_a_second_tick_sends_nothing(tmp_path) -> None:
    ledger, broker = world(tmp_path)
    frame = order_frame("v1", ["A", "B", "C"], quantity=[10, 7, 3], side=["buy", "sell", "buy"], n_slices=3)
    first = run(frame, ledger, broker)
    expected = {client_order_id("v1", s, j) for s in "ABC" for j in range(3)}
    assert set(broker.client_ids()) == expected
    assert (first.children_planned, first.submitted, first.parents_planned) == (9, 9, 3)
    assert {c.state for c in ledger.children()} == {OrderState.ACKNOWLEDGED}
    assert first.latency_s is not None and 0 < first.latency_s <= first.timings["total_s"]
    second = run(frame, ledger, broker)  # duplicate sensor tick / run retry
    assert (second.submitted, second.parents_skipped, second.children_planned) == (0, 3, 0)
    ledger2, broker2 = Ledger.open(str(ledger.engine.url)), PaperBroker(broker.state_dir)  # restart
    assert run(frame, ledger2, broker2).submitted == 0
    assert broker2.duplicate_attempts == 0 and len(broker2.client_ids()) == 9


def test_default_ledger_url_lives_under_the_data_folder(tmp_path) -> None:
    url = default_url(Paths(tmp_path / "data"))
    assert url == f"sqlite:///{tmp_path / 'data' / 'ledger' / 'ledger.sqlite'}"
    assert Ledger.open(paths=Paths(tmp_path / "data")).children() == []


def test_ledger_url_from_the_environment_and_never_shown_with_its_password(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEM_LEDGER_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    Ledger.open(paths=Paths(tmp_path / "data")).record_plan([])
    assert (tmp_path / "env.sqlite").exists() and not (tmp_path / "data" / "ledger" / "ledger.sqlite").exists()
    import types

    import sqlalchemy as sa

    engine = types.SimpleNamespace(url=sa.engine.make_url("postgresql://mem:hunter2@db/ledger"))
    shown = repr(Ledger(engine))  # type: ignore[arg-type]
    assert "hunter2" not in shown and "db/ledger" in shown


def test_lost_reply_is_recovered_by_lookup_never_resent(tmp_path) -> None:
    ledger, paper = world(tmp_path)
    faulty = FaultyBroker(paper, FaultRates(lost_reply=1.0), seed=0)
    result = run(order_frame("v1", ["A"], quantity=4, n_slices=2), ledger, faulty)
    assert result.submitted == 0 and result.recovered == 2
    assert paper.duplicate_attempts == 0 and len(paper.client_ids()) == 2
    assert [c.state for c in ledger.children()] == [OrderState.ACKNOWLEDGED] * 2


def test_timeouts_open_the_breaker_then_a_later_run_sends_the_rest(tmp_path) -> None:
    ledger, paper = world(tmp_path)
    now = [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)]
    breaker = CircuitBreaker(BreakerConfig(failures=2, cooldown_seconds=60), lambda: now[0])
    faulty = FaultyBroker(paper, FaultRates(timeout=1.0), seed=0)
    frame = order_frame("v1", ["A", "B"], quantity=5, n_slices=5)
    result = run(frame, ledger, faulty, breaker=breaker)
    assert result.stopped_by == "circuit_breaker" and result.breaker["state"] == "open"
    assert result.submitted == 0 and len(result.pending) == 10 and paper.client_ids() == []
    assert {c.state for c in ledger.children()} == {OrderState.NEW}  # written before sending, never sent
    now[0] += dt.timedelta(seconds=61)
    assert breaker.state is BreakerState.HALF_OPEN
    again = run(frame, ledger, paper, breaker=breaker)  # the broker is back: the probe succeeds
    assert again.resent == 10 and again.reconcile.summary()["absent"] == 10
    assert breaker.state is BreakerState.CLOSED and len(paper.client_ids()) == 10


class InFlight:
    """A broker whose first request times out but reaches the exchange later (while the engine waits)."""

    name = "in-flight"

    def __init__(self, inner: PaperBroker) -> None:
        self.inner, self.late, self.first = inner, [], True

    def submit(self, order: ChildOrder):
        if self.first:
            self.first = False
            self.late.append(order)
            raise BrokerAmbiguous("timed out")
        return self.inner.submit(order)

    def land(self, _seconds: float) -> None:
        for order in self.late:
            self.inner.submit(order)
        self.late = []

    def lookup(self, client_id: str, symbol: str):
        return self.inner.lookup(client_id, symbol)

    def orders(self, symbols=None):
        return self.inner.orders(symbols)

    def cancel(self, client_id: str, symbol: str):
        return self.inner.cancel(client_id, symbol)


def test_a_request_landing_late_is_found_by_the_lookup_before_a_resend(tmp_path) -> None:
    ledger, paper = world(tmp_path)
    broker = InFlight(paper)
    frame = order_frame("v1", ["A"], quantity=2, n_slices=2)
    result = run(frame, ledger, broker, retry_delay_seconds=5.0, sleep=broker.land)
    assert (result.submitted, result.recovered, result.pending) == (1, 1, ())
    assert paper.duplicate_attempts == 0 and len(paper.client_ids()) == 2
    assert {c.state for c in ledger.children()} == {OrderState.ACKNOWLEDGED}


def test_unresolved_lookup_marks_the_order_submitted_and_the_next_start_resolves_it(tmp_path) -> None:
    ledger, paper = world(tmp_path)
    faulty = FaultyBroker(paper, FaultRates(lost_reply=1.0, lookup_timeout=1.0), seed=0)
    frame = order_frame("v1", ["A"], quantity=1, n_slices=1)
    result = execute(frame, ledger, faulty, PreTradeGate(LOOSE), CircuitBreaker(), retries=0)
    (cid,) = result.unresolved
    assert ledger.child(cid).state is OrderState.SUBMITTED
    rec = reconcile(ledger, paper)
    assert rec.updated == 1 and ledger.child(cid).state is OrderState.ACKNOWLEDGED
    assert paper.duplicate_attempts == 0


def test_gate_rejections_are_recorded_and_nothing_reaches_the_broker(tmp_path) -> None:
    ledger, paper = world(tmp_path)
    frame = order_frame("v1", ["A", "B"], quantity=[100, 10], price=10.0)
    gate = PreTradeGate(GateConfig(max_order_notional=750.0))  # an operator's ceiling
    result = run(frame, ledger, paper, gate=gate)
    (rejection,) = result.rejections
    assert (rejection.symbol, rejection.limit, rejection.amount, rejection.threshold) == (
        "A",
        "max_order_notional",
        1000.0,
        750.0,
    )
    assert {c.symbol for c in ledger.children()} == {"B"} and len(paper.client_ids()) == 3
    parents = ledger.parents_frame().sort("symbol")
    assert parents.select("symbol", "status", "reject_limit").rows() == [
        ("A", "rejected", "max_order_notional"),
        ("B", "approved", None),
    ]
    assert run(frame, ledger, paper, gate=gate).rejections == ()  # decided once per decision version


def test_the_kill_switch_stops_sends_already_planned(tmp_path) -> None:
    ledger, paper = world(tmp_path)
    gate = PreTradeGate(LOOSE)
    sends = itertools.count()

    def hook(step: str) -> None:
        if step == "before_send" and next(sends) == 2:
            gate.engage_kill_switch("operator")

    result = run(order_frame("v1", ["A"], quantity=5, n_slices=5), ledger, paper, gate=gate, crash_hook=hook)
    assert result.stopped_by == "kill_switch" and result.submitted == 2 and len(result.pending) == 3
    assert run(order_frame("v1", ["A"], quantity=5, n_slices=5), ledger, paper, gate=gate).submitted == 0
    gate.release_kill_switch()
    assert run(order_frame("v1", ["A"], quantity=5, n_slices=5), ledger, paper, gate=gate).resent == 3


def test_unsent_children_past_their_time_to_live_expire_instead_of_being_sent_days_later(tmp_path) -> None:
    now = [dt.datetime(2024, 1, 2, 15, tzinfo=dt.UTC)]
    ledger, paper = Ledger.open(URLS("ledger"), clock=lambda: now[0]), PaperBroker(tmp_path / "paper")
    gate = PreTradeGate(LOOSE)

    def kill_after(n: int) -> Callable[[str], None]:  # the operator stops trading after n sends
        sends = itertools.count()

        def hook(step: str) -> None:
            if step == "before_send" and next(sends) == n:
                gate.engage_kill_switch("operator")

        return hook

    stopped = run(order_frame("v1", ["A"], quantity=5, n_slices=5), ledger, paper, gate=gate, crash_hook=kill_after(2))
    assert len(stopped.pending) == 3
    gate.release_kill_switch()
    now[0] += dt.timedelta(hours=3)  # within the time to live: sent by the next execution
    second = run(order_frame("v2", ["A"], quantity=2, n_slices=2), ledger, paper, gate=gate, child_ttl_seconds=4 * 3600)
    assert (second.resent, second.expired, second.submitted) == (3, (), 5)
    # ...and past it: the days-old orders of v3 are not sent with v4; the ledger says why.
    stale = run(order_frame("v3", ["A"], quantity=3, n_slices=3), ledger, paper, gate=gate, crash_hook=kill_after(0))
    assert stale.submitted == 0 and len(stale.pending) == 3
    gate.release_kill_switch()
    now[0] += dt.timedelta(days=2)
    late = run(order_frame("v4", ["A"], quantity=1, n_slices=1), ledger, paper, gate=gate, child_ttl_seconds=4 * 3600)
    expired = {client_order_id("v3", "A", j) for j in range(3)}
    assert set(late.expired) == expired and late.resent == 0 and late.submitted == 1
    assert expired.isdisjoint(paper.client_ids())
    assert {ledger.child(cid).state for cid in expired} == {OrderState.EXPIRED}
    moves = ledger.transitions_frame().filter(
        pl.col("client_id").is_in(list(expired)) & (pl.col("to_state") == "expired")
    )
    reasons = moves["reason"].to_list()
    assert len(reasons) == 3 and all(
        r.startswith("expired unsent: 172800 s old, time to live 14400 s") for r in reasons
    )


def test_reconcile_adopts_mem_orders_the_ledger_lacks_and_ignores_others(tmp_path) -> None:
    ledger, paper = world(tmp_path)
    mine = client_order_id("lost-run", "A", 0)
    paper.submit(ChildOrder(mine, None, 0, "A", Side.SELL, 5.0, 10.0, DECISION_DATE))
    paper.submit(ChildOrder("manual-order-1", None, 0, "A", Side.BUY, 1.0, 10.0, DECISION_DATE))
    rec = reconcile(ledger, paper)
    assert rec.adopted == (mine,)
    record = ledger.child(mine)
    assert record.adopted and record.state is OrderState.ACKNOWLEDGED and record.side is Side.SELL
    assert ledger.child("manual-order-1") is None
    assert reconcile(ledger, paper).adopted == ()


def test_a_second_executor_is_refused_while_the_lock_is_held(tmp_path) -> None:
    ledger, paper = world(tmp_path)
    with ledger.lock("run-1"):
        with pytest.raises(LedgerBusy, match="held by 'run-1'"):
            run(order_frame("v1", ["A"]), ledger, paper, lock_owner="run-2")
    assert run(order_frame("v1", ["A"]), ledger, paper, lock_owner="run-2").submitted == 3


def test_a_dead_executors_lock_is_taken_over_after_its_ttl_and_a_usurped_run_stops(tmp_path) -> None:
    now = [dt.datetime(2024, 1, 2, 9, tzinfo=dt.UTC)]
    url = URLS("ledger")
    dead = Ledger.open(url, clock=lambda: now[0])
    holder = dead.lock("dead-run", ttl_seconds=120)
    holder.__enter__()  # acquired, never released: the process died
    ledger, paper = Ledger.open(url, clock=lambda: now[0]), PaperBroker(tmp_path / "paper")
    frame = order_frame("v1", ["A"], quantity=4, n_slices=4)
    with pytest.raises(LedgerBusy):
        run(frame, ledger, paper, lock_owner="next-run")
    now[0] += dt.timedelta(seconds=121)
    assert run(frame, ledger, paper, lock_owner="next-run").submitted == 4

    def usurp(step: str) -> None:  # another executor takes the lock while this one works
        if step == "flushed":
            with ledger.engine.begin() as conn:
                conn.exec_driver_sql("UPDATE locks SET owner = 'other'")

    with pytest.raises(LedgerBusy, match="no longer held"):
        run(order_frame("v2", ["A"], quantity=4, n_slices=4), ledger, paper, flush_every=1, crash_hook=usurp)
    assert len(paper.client_ids()) == 5  # it stopped after the first reply of v2


def test_paper_fills_flow_into_ledger_positions_and_slippage_training_data(tmp_path) -> None:
    ledger = Ledger.open(URLS("ledger"))
    paper = PaperBroker(tmp_path / "paper", PaperConfig(participation_cap=0.02))
    frame = order_frame("v1", ["A", "B"], quantity=[60, 30], side=["buy", "sell"], n_slices=2)
    run(frame, ledger, paper)
    paper.on_bars(bars(["A", "B"], start=DECISION_DATE - dt.timedelta(days=30), n_days=40))
    rec = reconcile(ledger, paper)
    assert rec.new_fills > 0
    broker_filled = {r.client_id: (r.filled_quantity, r.state) for r in paper.orders()}
    assert {c.client_id: (c.filled_quantity, c.state) for c in ledger.children()} == broker_filled
    signed = {"A": 0.0, "B": 0.0}
    for r in paper.orders():
        signed[r.symbol] += r.side.sign * r.filled_quantity
    assert dict(ledger.positions().iter_rows()) == pytest.approx(signed)
    assert signed == {"A": 60.0, "B": -30.0}

    training = ledger.fills_for_training()
    assert set((DATE, TARGET, *FEATURES)) <= set(training.columns)
    assert training.height == sum(len(r.fills) for r in paper.orders())
    assert training[DATE].min() > DECISION_DATE
    x = order_features(training)  # the slippage model's own validation accepts it
    assert x.shape == (training.height, len(FEATURES))
    assert set(training["side"]) == {"buy", "sell"}
    assert fit_square_root_law(training) > 0  # costs rise with size, as the paper impact model says


def test_execution_config_reads_the_params_file_section() -> None:
    config = ExecutionConfig.from_params(section("execution"))
    assert config.engine.broker == "paper" and config.engine.ledger_url == ""
    # no operator ceilings by default: the gate enforces each decision's own stored limits
    assert (config.gate.max_position_notional, config.gate.max_gross_exposure) == (float("inf"), float("inf"))
    assert config.paper.participation_cap > 0 and config.breaker.failures >= 1


# -- randomized fault + crash scenarios ----------------------------------------------------------------


class CrashAt:
    """Crash hook: raises SimulatedCrash at the n-th step (None: never)."""

    def __init__(self, n: int | None) -> None:
        self.n, self.steps = n, 0

    def __call__(self, step: str) -> None:
        self.steps += 1
        if self.n is not None and self.steps == self.n:
            raise SimulatedCrash(step)


def scenario(seed: int, root: Path) -> dict[str, int]:
    rng = random.Random(seed)
    frames = random_decisions(rng, f"dec{seed}", max_symbols=5, max_slices=5)
    rates = random_fault_rates(rng, top=0.8)
    symbols = frames[0]["symbol"].to_list()
    url = URLS(root.name)
    market = bars(symbols, start=DECISION_DATE - dt.timedelta(days=25), n_days=30, seed=seed)
    crashes = 0
    for attempt in range(rng.randint(2, 6)):  # process lifetimes: each may die at a random step
        ledger, paper = Ledger.open(url), PaperBroker(root / "paper", PaperConfig(participation_cap=0.004))
        broker = FaultyBroker(paper, rates, seed=seed * 1000 + attempt)
        breaker = CircuitBreaker(BreakerConfig(failures=rng.randint(1, 4), cooldown_seconds=0))
        hook = CrashAt(rng.randint(1, 30) if rng.random() < 0.7 else None)
        try:
            for frame in frames:
                for _ in range(rng.choice([1, 1, 2])):  # duplicate sensor ticks
                    execute(frame, ledger, broker, PreTradeGate(LOOSE), breaker, crash_hook=hook)
        except SimulatedCrash:
            crashes += 1
        if rng.random() < 0.5:  # the market moves on between lifetimes: paper fills
            paper.on_bars(market.filter(pl.col("date") <= DECISION_DATE + dt.timedelta(days=attempt + 1)))
        ledger.close()
        paper.close()

    # Final lifetime: a healthy broker; run every decision again, then reconcile.
    ledger, paper = Ledger.open(url), PaperBroker(root / "paper", PaperConfig(participation_cap=0.004))
    for frame in frames:
        execute(frame, ledger, paper, PreTradeGate(LOOSE), CircuitBreaker())
    reconcile(ledger, paper)

    orders = assert_exactly_once(seed, frames, ledger, paper)
    # Every transition in the log is legal.
    log = ledger.transitions_frame()
    for (cid,), part in log.group_by("client_id"):
        steps = part.select("from_state", "to_state").rows()
        assert steps[0] == (None, "new")
        for (_, before), (frm, to) in itertools.pairwise(steps):
            assert frm == before and to in LEGAL_NEXT[frm], (seed, cid, steps)
    ledger.close()
    paper.close()
    return {"crashes": crashes, "orders": orders}


@pytest.mark.parametrize("block", range(8))
def test_randomized_faults_crashes_and_duplicate_ticks_never_duplicate_or_lose_orders(tmp_path, block: int) -> None:
    totals = {"crashes": 0, "orders": 0}
    for seed in range(block * 26, (block + 1) * 26):  # 208 scenarios in all
        stats = scenario(seed, tmp_path / f"s{seed}")
        for key in totals:
            totals[key] += stats[key]
    assert totals["crashes"] >= 10 and totals["orders"] >= 100  # the scenarios do exercise crashes


def test_scenarios_really_inject_every_kind_of_fault(tmp_path) -> None:
    ledger, paper = world(tmp_path)
    rates = FaultRates(lost_reply=0.2, timeout=0.2, reject=0.2, partial=0.2, raise_=0.2, lookup_timeout=0.2)
    broker = FaultyBroker(paper, rates, seed=1)
    frame = order_frame("v1", [f"S{i}" for i in range(10)], quantity=5, n_slices=5)
    execute(frame, ledger, broker, PreTradeGate(LOOSE), CircuitBreaker(BreakerConfig(failures=1000)))
    kinds = {kind for kind, _ in broker.injected}
    assert kinds == {"lost_reply", "timeout", "reject", "partial", "raise", "lookup_timeout"}
    with pytest.raises(BrokerAmbiguous):
        FaultyBroker(paper, FaultRates(lookup_timeout=1.0), seed=0).orders()


def test_runtime_from_params_keeps_all_state_under_the_data_folder(tmp_path) -> None:
    from mem_pipeline.execution.runtime import ExecutionRuntime

    paths = Paths(tmp_path / "data")
    runtime = ExecutionRuntime.build(paths=paths)
    result = runtime.run(order_frame("v1", ["A"], quantity=10, n_slices=2))
    assert result.submitted == 2 and runtime.broker.name == "paper"
    runtime.close()
    assert (paths.ledger / "ledger.sqlite").exists()
    assert (paths.ledger / "paper" / "paper_broker.sqlite").exists()
    again = ExecutionRuntime.build(paths=paths)  # the next run, another process
    assert again.run(order_frame("v1", ["A"], quantity=10, n_slices=2)).submitted == 0
    assert again.ledger.positions().is_empty()


def test_the_loop_closes_paper_fills_train_the_slippage_model_that_prices_the_next_slices(tmp_path) -> None:
    from mem_pipeline.execution.schedules import MarketStats
    from mem_pipeline.models.slippage import SlippageConfig, fit_slippage

    ledger = Ledger.open(URLS("ledger"))
    paper = PaperBroker(tmp_path / "paper", PaperConfig(participation_cap=0.01, max_bars=8, seed=5))
    symbols = [f"S{i:02d}" for i in range(30)]
    rng = random.Random(0)
    frame = order_frame(
        "v1", symbols, quantity=[rng.randint(100, 400) for _ in symbols], side=["buy", "sell"] * 15, n_slices=4
    )
    run(frame, ledger, paper)
    paper.on_bars(bars(symbols, start=DECISION_DATE - dt.timedelta(days=30), n_days=40, volume=1000.0))
    reconcile(ledger, paper)
    training = ledger.fills_for_training()
    assert training.height >= 400 and training[DATE].n_unique() >= 4

    fitted = fit_slippage(training, SlippageConfig(n_estimators=20, min_child_samples=20, quantiles=(0.9,)))
    stats = MarketStats(adv=1000.0, sigma=0.01, spread_bps=10.0)
    children = execute(
        order_frame("v2", ["S00"], quantity=40, n_slices=4),
        ledger,
        paper,
        PreTradeGate(LOOSE),
        CircuitBreaker(),
        last_prices={s: 10.0 for s in symbols},  # every held symbol needs a price for the exposure limit
        market={"S00": stats},
        cost_model=fitted.predict,
    )
    assert children.submitted == 4
    planned = [c for c in ledger.children() if c.client_id in {client_order_id("v2", "S00", j) for j in range(4)}]
    assert len(planned) == 4
    # Priced by the model trained on paper fills; the paper market's true expected cost of a 10-unit slice
    # (Q/ADV = 0.01, sigma 1%, spread 10 bps) is 5 + 0.5 * 0.01 * 0.01^0.6 * 1e4 = 8.15 bps.
    truth = 5.0 + 0.5 * 0.01 * 0.01**0.6 * 1e4
    for c in planned:
        assert c.expected_cost_bps == pytest.approx(truth, abs=1.5), c.expected_cost_bps
