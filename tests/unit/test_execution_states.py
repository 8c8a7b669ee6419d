"""Order state machine, client order ids and the ledger's bookkeeping (incl. a hypothesis state machine)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re

import polars as pl
import pytest
from execution_support import order_frame
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from mem_pipeline.core.orders import Side, orders_from_frame, parent_order_id
from mem_pipeline.core.schemas import POSITION_SCHEMA
from mem_pipeline.execution.errors import IllegalTransition
from mem_pipeline.execution.ids import client_order_id, is_mem_client_id
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.execution.orders import Fill, OrderReport
from mem_pipeline.execution.schedules import plan_children
from mem_pipeline.execution.states import OrderState, path, transition

S = OrderState
# The machine, written out pair by pair (independent of ALLOWED in the code).
LEGAL = {
    ("new", "submitted"), ("new", "cancelled"), ("new", "rejected"), ("new", "expired"),
    ("submitted", "acknowledged"), ("submitted", "partially_filled"), ("submitted", "filled"),
    ("submitted", "cancelled"), ("submitted", "rejected"), ("submitted", "expired"),
    ("acknowledged", "partially_filled"), ("acknowledged", "filled"), ("acknowledged", "cancelled"),
    ("acknowledged", "rejected"), ("acknowledged", "expired"),
    ("partially_filled", "partially_filled"), ("partially_filled", "filled"),
    ("partially_filled", "cancelled"), ("partially_filled", "expired"),
}  # fmt: skip
T0 = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


def test_every_pair_of_states_is_allowed_or_refused_as_specified() -> None:
    for a, b in itertools.product(OrderState, OrderState):
        if (a.value, b.value) in LEGAL:
            assert transition(a, b, "memX") is b
        else:
            with pytest.raises(IllegalTransition) as info:
                transition(a, b, "mem123")
            message = str(info.value)
            assert "mem123" in message and f"{a.value} -> {b.value}" in message


def test_terminal_states_have_no_way_out_and_path_fills_missed_steps() -> None:
    for state in (S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED):
        assert state.terminal
        assert not any((state.value, b.value) in LEGAL for b in OrderState)
    assert path(S.NEW, S.FILLED, "x") == [S.SUBMITTED, S.FILLED]
    assert path(S.NEW, S.ACKNOWLEDGED, "x") == [S.SUBMITTED, S.ACKNOWLEDGED]
    assert path(S.ACKNOWLEDGED, S.ACKNOWLEDGED, "x") == []
    with pytest.raises(IllegalTransition):
        path(S.FILLED, S.CANCELLED, "x")
    with pytest.raises(IllegalTransition):
        path(S.ACKNOWLEDGED, S.SUBMITTED, "x")


def test_client_order_id_is_deterministic_short_and_distinct() -> None:
    cid = client_order_id("v1", "BTC/USDT", 3)
    expected = "mem" + hashlib.sha256(b"child\x1fv1\x1fBTC/USDT\x1f3").hexdigest()[:24]
    assert cid == expected == client_order_id("v1", "BTC/USDT", 3)
    assert len(cid) == 27 <= 36 and re.fullmatch(r"[a-z0-9]+", cid)
    assert is_mem_client_id(cid) and not is_mem_client_id("x" + cid[1:]) and not is_mem_client_id(None)
    ids = {client_order_id(v, s, j) for v in ("v1", "v2") for s in ("A", "B") for j in range(50)}
    assert len(ids) == 200
    assert client_order_id("a|b", "c", 0) != client_order_id("a", "b|c", 0)
    assert parent_order_id("v1", "A") != parent_order_id("v1", "B")
    with pytest.raises(ValueError):
        client_order_id("v1", "A", -1)


def _planned(version: str, symbols: list[str], **kw: object) -> list:
    parents = orders_from_frame(order_frame(version, symbols, **kw))
    return [(p, plan_children(p)) for p in parents]


def test_ledger_records_plan_before_sending_and_refuses_illegal_moves(tmp_path) -> None:
    clock = Clock()
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite'}", clock=clock)
    plan = _planned("v1", ["AAA"], quantity=9, n_slices=3)
    ledger.record_plan(plan)
    children = ledger.children()
    assert [c.state for c in children] == [S.NEW] * 3
    cid = children[0].client_id
    ledger.set_state(cid, S.SUBMITTED, "sent")
    with pytest.raises(IllegalTransition, match=f"{cid}: illegal state transition submitted -> new"):
        ledger.set_state(cid, S.NEW)
    assert ledger.child(cid).state is S.SUBMITTED  # the refused move changed nothing
    log = ledger.transitions_frame(cid)
    assert log.select("from_state", "to_state").rows() == [(None, "new"), ("new", "submitted")]
    assert log["at"].to_list() == [T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=2)]
    assert log["at"].dtype == pl.Datetime("us", "UTC")
    with ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000


def test_ledger_books_cumulative_broker_fills_as_increments_and_moves_positions(tmp_path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.sqlite'}")
    ledger.record_plan(_planned("v1", ["AAA"], quantity=10, n_slices=1, side="sell"))
    (child,) = ledger.children()

    def report(state: S, filled: float, avg: float | None) -> OrderReport:
        return OrderReport(child.client_id, "B1", "AAA", Side.SELL, 10.0, state, filled, avg)

    ledger.apply_reports([report(S.PARTIALLY_FILLED, 4.0, 100.0)], "poll")
    ledger.apply_reports([report(S.PARTIALLY_FILLED, 4.0, 100.0)], "poll")  # same news twice: booked once
    ledger.apply_reports([report(S.FILLED, 10.0, 103.0)], "poll")
    record = ledger.child(child.client_id)
    assert record.state is S.FILLED and record.filled_quantity == 10.0
    assert record.average_price == pytest.approx(103.0)
    # The second fill is 6 units at (10*103 - 4*100) / 6 = 105.
    with ledger.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT quantity, price FROM fills ORDER BY quantity").all()
    assert rows == [(4.0, 100.0), (6.0, pytest.approx(105.0))]
    assert ledger.positions().rows() == [("AAA", -10.0)]
    stale = ledger.apply_reports([report(S.ACKNOWLEDGED, 0.0, None)], "stale poll")  # refused, not raised
    assert stale.conflicts == (child.client_id,) and ledger.child(child.client_id).state is S.FILLED
    ledger.record_plan(_planned("v2", ["AAA"], quantity=10, n_slices=1))
    (other,) = ledger.children(parent_ids=[parent_order_id("v2", "AAA")])
    fill = Fill("f1", other.client_id, 2.0, 100.0)
    ledger.apply_reports(
        [OrderReport(other.client_id, "B2", "AAA", Side.BUY, 10.0, S.PARTIALLY_FILLED, fills=(fill,))], "x"
    )
    late = OrderReport(other.client_id, "B2", "AAA", Side.BUY, 10.0, S.ACKNOWLEDGED)  # older news than ours
    assert ledger.apply_reports([late], "stale poll").conflicts == (other.client_id,)
    assert ledger.child(other.client_id).state is S.PARTIALLY_FILLED
    assert ledger.positions().schema == pl.Schema(POSITION_SCHEMA)
    chain = ledger.transitions_frame(child.client_id).select("from_state", "to_state").rows()
    assert chain == [
        (None, "new"),
        ("new", "submitted"),
        ("submitted", "partially_filled"),
        ("partially_filled", "filled"),
    ]


class LedgerMachine(RuleBasedStateMachine):
    """Random moves and fills against a model; the ledger must agree with it after every step."""

    orders = Bundle("orders")

    @initialize()
    def open_ledger(self) -> None:
        self.ledger = Ledger.open("sqlite://")
        self.model: dict[str, S] = {}
        self.side: dict[str, int] = {}
        self.position = 0.0
        self.n = 0

    @rule(target=orders, slices=st.integers(1, 3), sell=st.booleans())
    def plan(self, slices: int, sell: bool) -> object:
        self.n += 1
        plan = _planned(f"v{self.n}", ["SYM"], quantity=3 * slices, n_slices=slices, side="sell" if sell else "buy")
        self.ledger.record_plan(plan)
        cids = [c.client_id for c in plan[0][1]]
        for cid in cids:
            self.model[cid] = S.NEW
            self.side[cid] = -1 if sell else 1
        return cids[0]

    @rule(cid=orders, target_state=st.sampled_from(list(OrderState)))
    def move(self, cid: str, target_state: S) -> None:
        before = self.model[cid]
        if (before.value, target_state.value) in LEGAL:
            self.ledger.set_state(cid, target_state, "test")
            self.model[cid] = target_state
        else:
            with pytest.raises(IllegalTransition):
                self.ledger.set_state(cid, target_state, "test")

    @rule(cid=consumes(orders), qty=st.sampled_from([0.5, 1.0, 1.5]), n=st.integers(0, 10_000))
    def fill(self, cid: str, qty: float, n: int) -> None:
        before = self.model[cid]
        fill = Fill(f"{cid}:{n}", cid, qty, 10.0)
        report = OrderReport(cid, "B", "SYM", Side.BUY, 3.0, S.PARTIALLY_FILLED, fills=(fill,))
        result = self.ledger.apply_reports([report], "test")
        if before.terminal:
            assert result.conflicts == (cid,)
        else:
            self.model[cid] = S.PARTIALLY_FILLED
            self.position += self.side[cid] * qty

    @invariant()
    def agrees_with_model(self) -> None:
        if not hasattr(self, "ledger"):
            return
        states = {c.client_id: c.state for c in self.ledger.children()}
        assert states == self.model
        positions = dict(self.ledger.positions().iter_rows())
        assert positions.get("SYM", 0.0) == pytest.approx(self.position)
        log = self.ledger.transitions_frame()
        for cid, part in log.group_by("client_id"):
            steps = part.select("from_state", "to_state").rows()
            assert steps[0] == (None, "new")
            for (_, to_prev), (frm, to) in itertools.pairwise(steps):
                assert frm == to_prev and (frm, to) in LEGAL
            assert steps[-1][1] == self.model[cid[0]].value


LedgerMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_ledger_state_machine = LedgerMachine.TestCase
