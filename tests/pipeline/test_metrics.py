"""The Prometheus endpoint, scraped over HTTP on 127.0.0.1: orders by state and gate rejections against the
ledger's own rows (read here with sqlite3), decision age, data freshness, and the latest run per job."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import urllib.request

import dagster as dg
import polars as pl
from prometheus_client.parser import text_string_to_metric_families

from assets.metrics import serve
from mem_pipeline.core.orders import orders_from_frame
from mem_pipeline.core.paths import PROJECT_ROOT, Paths
from mem_pipeline.decisions.sample_inputs import DECISION_DATE, decide_frames, make_inputs, sqrt_cost_model
from mem_pipeline.decisions.store import DecisionStore
from mem_pipeline.execution.gate import Rejection
from mem_pipeline.execution.runtime import open_ledger
from mem_pipeline.execution.schedules import plan_children
from mem_pipeline.execution.states import OrderState


@dg.asset
def tiny() -> int:
    return 1


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_metrics_endpoint_reports_the_ledger_decisions_data_and_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MEM_LEDGER_URL", raising=False)
    paths = Paths(tmp_path / "data")
    decision, _ = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **make_inputs(n_symbols=8, seed=4))
    DecisionStore(paths.decisions).write(decision)
    parents = orders_from_frame(decision.orders)
    assert len(parents) >= 3
    ledger = open_ledger(paths)
    rejection = Rejection(parents[2].parent_id, parents[2].symbol, "max_order_notional", 2.0, 1.0)
    ledger.record_plan([(p, plan_children(p)) for p in parents[:2]], [(parents[2], rejection)])
    first = ledger.children()[0].client_id
    ledger.set_state(first, OrderState.SUBMITTED, "sent")
    ledger.close()
    (paths.bars("sample") / "date=2024-06-27").mkdir(parents=True)
    pl.DataFrame({"symbol": ["AAA"]}).write_parquet(paths.bars("sample") / "date=2024-06-27" / "part.parquet")
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([tiny], instance=instance).success
    # two decision days' risk assessments: the newest counts (equity 87.5 against a peak of 100)
    for day, drawdown, killed in (("2024-06-26", 0.01, False), ("2024-06-27", 1 - 87.5 / 100, True)):
        (paths.risk / day).mkdir(parents=True)
        (paths.risk / day / "limits.json").write_text(json.dumps({"drawdown": drawdown, "kill_switch": killed}))
    summary = {"breaker": {"state": "open", "consecutive_failures": 5}}
    instance.report_runless_asset_event(
        dg.AssetMaterialization("executed_orders", metadata={"summary": dg.MetadataValue.json(summary)})
    )

    server, _ = serve(paths, "sample", 0, instance)
    try:
        got = _scrape(server.server_port)
    finally:
        server.shutdown()

    with sqlite3.connect(paths.ledger / "ledger.sqlite") as db:
        by_state = dict(db.execute("SELECT state, COUNT(*) FROM child_orders GROUP BY state").fetchall())
        rejected = dict(
            db.execute("SELECT reject_limit, COUNT(*) FROM parent_orders WHERE status = 'rejected' GROUP BY 1")
        )
    assert set(by_state) == {"new", "submitted"} and by_state["submitted"] == 1
    for state, n in by_state.items():
        assert got[("mem_child_orders", (("state", state),))] == n
    assert rejected == {"max_order_notional": 1}
    assert got[("mem_parent_rejections", (("limit", "max_order_notional"),))] == 1
    assert 0 <= got[("mem_latest_decision_age_seconds", ())] < 120
    expected_days = (dt.date.today() - dt.date(2024, 6, 27)).days
    assert got[("mem_data_freshness_days", (("source", "sample"),))] == expected_days
    assert got[("mem_last_run_success", (("job", "__ephemeral_asset_job__"),))] == 1.0
    assert got[("mem_last_run_duration_seconds", (("job", "__ephemeral_asset_job__"),))] > 0
    assert got[("mem_gross_exposure", ())] == 0.0  # nothing filled yet
    assert got[("mem_drawdown", ())] == 0.125 and got[("mem_kill_switch", ())] == 1.0
    breaker = {labels[0][1]: v for (name, labels), v in got.items() if name == "mem_circuit_breaker"}
    assert breaker == {"closed": 0.0, "open": 1.0, "half_open": 0.0}
    # The Grafana dashboard shipped beside the endpoint queries only metrics the endpoint serves.
    dashboard = json.loads((PROJECT_ROOT / "config" / "grafana" / "mem_dashboard.json").read_text())
    queried = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"mem_[a-z_]+", t["expr"])}
    served = {name for name, _ in got} | {"mem_position_units"}  # no position yet: the family is empty
    assert queried and queried <= served, queried - served
