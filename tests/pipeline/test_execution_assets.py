"""Decision → sensor → execute_orders → fills through Dagster on the synthetic market: exactly once.

Dagster delivers at least once (a repeated tick, a retried run); the ledger and the broker make it exactly once.
Fake broker credentials sit in the environment the whole time and must appear in no record or file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from assets.defs.decisions.assets import trade_decisions
from assets.defs.execution.assets import executed_orders, order_fills
from assets.defs.execution.sensors import new_decisions
from assets.defs.models.assets import regime_model, slippage_model, vol_forecasts
from assets.defs.models.signal import signal_model
from assets.defs.risk.assets import risk_limits
from assets.resources import BrokerResource, LakeResource, LedgerResource, MarketDataResource
from mem_pipeline.decisions.store import DecisionStore
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.features.dbt_cli import dbt
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, generate_market
from tests.dbt.harness import write_lake
from tests.pipeline.helpers import assert_orders_unchanged

DAY, NEXT = dt.date(2018, 12, 20), dt.date(2018, 12, 21)
FAKE = {"MEM_CCXT_API_KEY": "mem-fake-api-key-7f3a9c", "MEM_CCXT_SECRET": "mem-fake-secret-e41b02"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in FAKE}
    os.environ.update(FAKE)
    data_dir = tmp_path_factory.mktemp("execution") / "data"
    write_lake(data_dir, "synthetic", generate_market(SyntheticConfig.from_params_file()).bars())
    dbt(data_dir, "run", dbt_vars={"source": "synthetic"})
    resources = {
        "lake": LakeResource(data_dir=str(data_dir)),
        "market": MarketDataResource(source="synthetic"),
        "broker": BrokerResource(),
        "ledger": LedgerResource(),
    }
    fitted = (regime_model, vol_forecasts, signal_model)
    config = {"ops": {a.op.name: {"config": {"as_of": DAY.isoformat()}} for a in fitted}}
    assert dg.materialize([*fitted, slippage_model], resources=resources, run_config=config).success
    instance = dg.DagsterInstance.ephemeral()
    yield data_dir, resources, instance
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _decide(resources, instance, day: dt.date) -> str:
    result = dg.materialize(
        [risk_limits, trade_decisions], resources=resources, partition_key=day.isoformat(), instance=instance
    )
    assert result.success
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["trade_decisions"]]
    return event.event_specific_data.materialization.metadata["decision_version"].value


def _launch(resources, instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """The run the sensor's request starts (its tags, run key and config), in process."""
    return dg.materialize(
        [executed_orders],
        resources=resources,
        partition_key=request.partition_key,
        run_config=request.run_config,
        instance=instance,
        tags={**request.tags, "dagster/run_key": request.run_key},
        raise_on_error=False,
    )


def _execute(resources, instance, request: dg.RunRequest) -> dict:
    result = _launch(resources, instance, request)
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def _ledger_children(data_dir: Path) -> pl.DataFrame:
    ledger = Ledger.open(None, paths=LakeResource(data_dir=str(data_dir)).paths())
    try:
        return ledger.orders_frame()
    finally:
        ledger.close()


def test_each_decision_version_is_sent_exactly_once_then_filled(setup) -> None:
    data_dir, resources, instance = setup
    version = _decide(resources, instance, DAY)
    orders = DecisionStore(data_dir / "decisions").read_orders(version)
    assert orders.height > 0
    assert_orders_unchanged(orders, "synthetic_2018-12-20")

    tick = new_decisions(dg.build_sensor_context(instance=instance, resources=resources))
    [request] = tick.run_requests
    assert (request.run_key, request.partition_key) == (version, DAY.isoformat())
    # The next tick, with the cursor, requests nothing; re-deciding the same inputs adds no version.
    assert _decide(resources, instance, DAY) == version
    again = new_decisions(dg.build_sensor_context(instance=instance, resources=resources, cursor=tick.cursor))
    assert again.run_requests == []
    assert json.loads(again.cursor) == json.loads(tick.cursor)

    first = _execute(resources, instance, request)
    assert first["parents"] == orders.height and first["submitted"] > 0
    children = _ledger_children(data_dir)
    assert children["client_id"].is_unique().all()
    # A retried run of the same version sends nothing new.
    retry = _execute(resources, instance, request)
    assert retry["submitted"] == 0
    assert _ledger_children(data_dir).height == children.height

    # A second version of an executed day is refused: its orders would double the day's trades.
    store = DecisionStore(data_dir / "decisions")
    decision = store.read(version)
    other = "f" * len(version)
    store.write(
        dataclasses.replace(
            decision, version=other, orders=decision.orders.with_columns(decision_version=pl.lit(other))
        )
    )
    refused = dg.materialize(
        [executed_orders],
        resources=resources,
        partition_key=DAY.isoformat(),
        run_config={"ops": {"executed_orders": {"config": {"decision_version": other}}}},
        instance=instance,
        raise_on_error=False,
    )
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.event_specific_data.error
    assert f"already executed under decision {version}" in error.cause.message
    assert _ledger_children(data_dir).height == children.height

    # The next day's bars fill the paper orders; the next decision starts from the ledger's positions.
    fills = dg.materialize([order_fills], resources=resources, partition_key=NEXT.isoformat(), instance=instance)
    assert fills.success
    booked = fills.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert booked["ledger_fills_total"].value > 0
    next_version = _decide(resources, instance, NEXT)
    next_orders = DecisionStore(data_dir / "decisions").read_orders(next_version)
    assert_orders_unchanged(next_orders, "synthetic_2018-12-21_after_fills")
    held = set(orders["symbol"])
    assert (next_orders.filter(pl.col("symbol").is_in(held))["current_position"] != 0).any()

    # The ledger's fills close the loop: the next slippage refit trains on them too.
    assert dg.materialize([slippage_model], resources=resources, instance=instance).success
    pointer = json.loads((data_dir / "models" / "slippage" / "current.json").read_text())
    assert pointer["n_ledger_fills"] == booked["ledger_fills_total"].value > 0


def test_no_credential_reaches_records_metadata_or_files(setup) -> None:
    data_dir, resources, instance = setup
    leaks = []
    for record in instance.get_event_records(dg.EventRecordsFilter(event_type=dg.DagsterEventType.STEP_SUCCESS)):
        leaks += [v for v in FAKE.values() if v in str(record.event_log_entry)]
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id):
            leaks += [v for v in FAKE.values() if v in entry.to_json()]
    for path in Path(data_dir).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaks += [f"{path}: {v}" for v in FAKE.values() if v.encode() in data]
    assert instance.get_runs(), "the other test should have left runs to scan"
    assert leaks == []


def test_a_failed_execution_run_is_retried_by_the_sensor_and_completes_without_a_duplicate(
    setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger becomes unreachable after the first orders reached the broker: the run fails. The sensor's
    next tick requests the version again under a new run key; that run reconciles, finds what the first sent
    (its replies were never booked), and sends only the rest."""
    from mem_pipeline.execution import engine
    from mem_pipeline.execution.brokers.paper import PaperBroker

    data_dir, resources, instance = setup
    version = _decide(resources, instance, NEXT)
    tick = new_decisions(dg.build_sensor_context(instance=instance, resources=resources))
    [request] = [r for r in tick.run_requests if r.partition_key == NEXT.isoformat()]
    submits: list[str] = []
    submit, mark_sending = PaperBroker.submit, Ledger.mark_sending

    def counted_submit(self, order):
        submits.append(order.client_id)
        return submit(self, order)

    def ledger_gone(self, client_ids, *args, **kw):
        if submits:  # the second chunk: the ledger's server has gone away
            raise sa.exc.OperationalError("UPDATE child_orders", {}, Exception("server closed the connection"))
        return mark_sending(self, client_ids, *args, **kw)

    monkeypatch.setattr(PaperBroker, "submit", counted_submit)
    monkeypatch.setattr(Ledger, "mark_sending", ledger_gone)
    monkeypatch.setattr(engine, "MARK_CHUNK", 10)
    failed = _launch(resources, instance, request)
    sent_by_the_failed_run = set(submits)
    assert not failed.success and len(sent_by_the_failed_run) == 10
    monkeypatch.setattr(Ledger, "mark_sending", mark_sending)

    again = new_decisions(dg.build_sensor_context(instance=instance, resources=resources, cursor=tick.cursor))
    [retry] = again.run_requests
    assert (retry.run_key, retry.partition_key) == (f"{version}:retry-1", NEXT.isoformat())
    metadata = _execute(resources, instance, retry)
    ledger = Ledger.open(None, paths=LakeResource(data_dir=str(data_dir)).paths())
    parents = ledger.parents_frame().filter(pl.col("decision_version") == version).select("parent_id")
    children = ledger.orders_frame().join(parents, on="parent_id", how="semi")
    ledger.close()
    assert metadata["submitted"] == len(submits) - len(sent_by_the_failed_run) > 0
    assert len(submits) == len(set(submits))  # every child reached the broker once
    assert sorted(children["client_id"]) == sorted(submits)  # and every child of the version did
    assert set(children["state"]) <= {"acknowledged", "partially_filled", "filled"}
    settled = new_decisions(dg.build_sensor_context(instance=instance, resources=resources, cursor=again.cursor))
    assert settled.run_requests == [] and json.loads(settled.cursor)["pending"] == {}
