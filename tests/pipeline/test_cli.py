"""The ``mem`` command: `doctor` says what is missing and never prints a secret, `report` shows the stored report
or says how to make one, `backtest` refuses unknown variants, `positions` and `orders` read the ledger."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from assets.cli import app
from mem_pipeline.backtest.report import build_report
from mem_pipeline.backtest.run import FILL_SCHEMA, BacktestRun

runner = CliRunner()


@pytest.fixture
def data(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("MEM_DATA_DIR", str(folder))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("MEM_LEDGER_URL", raising=False)
    return folder


def test_doctor_reports_a_missing_warehouse_without_failing(data) -> None:
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "not built yet: run `mem demo`" in result.output and "reachable" in result.output


def test_doctor_fails_on_an_unreachable_ledger_and_never_prints_its_password(data, monkeypatch) -> None:
    monkeypatch.setenv("MEM_LEDGER_URL", "postgresql+psycopg://mem:s3cr3t-pw@127.0.0.1:9/ledger?connect_timeout=1")
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "unreachable" in result.output and "s3cr3t-pw" not in result.output


def test_report_says_how_to_make_one_then_shows_it(data) -> None:
    missing = runner.invoke(app, ["report"])
    assert missing.exit_code == 1 and "run `mem backtest`" in missing.output
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(60)]
    rng = np.random.default_rng(0)
    runs = {}
    for name, drift in (("mem", 0.002), ("static", -0.001)):
        equity = 10_000 * np.cumprod(1 + rng.normal(drift, 0.01, 60))
        daily = pl.DataFrame({"trade_date": days, "equity": equity, "cash": equity, "gross_exposure": equity / 2,
                              "traded_notional": np.full(60, 10.0), "costs": np.full(60, 0.01)})  # fmt: skip
        signals = pl.DataFrame({"trade_date": days, "symbol": ["A"] * 60, "p_up": np.full(60, 0.55),
                                "reference_price": np.full(60, 1.0), "target_notional": rng.normal(0, 1, 60),
                                "next_ret": rng.normal(0, 0.01, 60)})  # fmt: skip
        info = {"window": ["2020-01-01", "2020-02-29"], "universe_digest": "u", "source": "synthetic", "universe": 1,
                "starting_equity": 10_000.0}  # fmt: skip
        runs[name] = BacktestRun(name, daily, signals, pl.DataFrame({"trade_date": days}),
                                 pl.DataFrame(schema=FILL_SCHEMA), info)  # fmt: skip
    report = build_report(runs, data / "reports" / "backtest")
    shown = runner.invoke(app, ["report"])
    assert shown.exit_code == 0, shown.output
    mem_sharpe = report.table.filter(pl.col("variant") == "mem")["sharpe"][0]
    assert f"{mem_sharpe:.2f}" in shown.output and "static" in shown.output
    assert "MEM beats static on Sharpe" in shown.output


def test_backtest_refuses_an_unknown_variant(data) -> None:
    result = runner.invoke(app, ["backtest", "mem", "no_such_variant"])
    assert result.exit_code == 1 and "unknown variants ['no_such_variant']" in result.output


def test_positions_and_orders_of_an_empty_ledger(data) -> None:
    assert "0 positions" in runner.invoke(app, ["positions"]).output
    assert "0 child orders" in runner.invoke(app, ["orders"]).output


def test_orders_lists_the_ledgers_children_by_state(data) -> None:
    from mem_pipeline.core.orders import orders_from_frame
    from mem_pipeline.core.paths import Paths
    from mem_pipeline.execution.runtime import open_ledger
    from mem_pipeline.execution.schedules import plan_children
    from mem_pipeline.execution.states import OrderState
    from tests.unit.execution_support import order_frame

    ledger = open_ledger(Paths.from_env())
    [parent] = orders_from_frame(order_frame("v1", ["AAA"], quantity=9, n_slices=3))
    ledger.record_plan([(parent, plan_children(parent))])
    first = ledger.children()[0].client_id
    ledger.set_state(first, OrderState.SUBMITTED, "sent")
    ledger.close()
    every = runner.invoke(app, ["orders"])
    assert every.exit_code == 0 and "3 child orders" in every.output and every.output.count("AAA") == 3
    new = runner.invoke(app, ["orders", "--state", "new"])
    assert "2 child orders" in new.output and first not in new.output


def test_kill_switch_flips_only_the_gates_line_of_the_params_file(data, tmp_path, monkeypatch) -> None:
    from mem_pipeline.core.params import load_params
    from mem_pipeline.core.paths import PARAMS_FILE

    params = tmp_path / "params.yaml"
    params.write_text(PARAMS_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("MEM_PARAMS", str(params))
    before = params.read_text(encoding="utf-8")
    on = runner.invoke(app, ["kill-switch", "on"])
    assert on.exit_code == 0, on.output
    assert load_params(params)["execution"]["gate"]["kill_switch"] is True
    changed = [(a, b) for a, b in zip(before.splitlines(), params.read_text().splitlines(), strict=True) if a != b]
    assert len(changed) == 1 and "kill_switch: true" in changed[0][1] and "#" in changed[0][1]  # comment kept
    assert runner.invoke(app, ["kill-switch", "off"]).exit_code == 0
    assert params.read_text(encoding="utf-8") == before
    assert runner.invoke(app, ["kill-switch", "maybe"]).exit_code == 1


def test_ingest_refuses_an_unknown_source(data) -> None:
    result = runner.invoke(app, ["ingest", "--source", "nasdaq_ftp"])
    assert result.exit_code == 1 and "unknown source 'nasdaq_ftp'" in result.output


def test_lineage_follows_an_order_to_its_decision_what_it_read_and_the_files(data) -> None:
    from mem_pipeline.core.orders import orders_from_frame
    from mem_pipeline.core.paths import Paths
    from mem_pipeline.decisions.lineage import trace
    from mem_pipeline.decisions.sample_inputs import DECISION_DATE, decide_frames, make_inputs, sqrt_cost_model
    from mem_pipeline.decisions.store import DecisionStore
    from mem_pipeline.execution.runtime import open_ledger
    from mem_pipeline.execution.schedules import plan_children

    paths = Paths.from_env()
    decision, _ = decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **make_inputs(n_symbols=8, seed=4))
    DecisionStore(paths.decisions).write(decision)
    ledger = open_ledger(paths)
    parent = orders_from_frame(decision.orders)[0]
    ledger.record_plan([(parent, plan_children(parent))])
    child = ledger.children()[0].client_id
    found = trace(paths, ledger, child, "sample")
    ledger.close()
    assert found.parent["decision_version"] == decision.version and found.child["symbol"] == parent.symbol
    assert found.decision["model_hashes"] == decision.manifest["model_hashes"]
    assert found.decision["inputs"] == decision.manifest["inputs"]
    assert found.files["decision_orders"].exists()
    assert found.files["raw_bars_of_the_day"] == paths.bars("sample") / f"date={DECISION_DATE}" / "part.parquet"
    assert set(found.missing()) >= {"raw_bars_of_the_day", "risk_inputs"}  # never written in this test
    # the sample decision's models and features were never stored: those links are broken, the decision is not
    broken = [c.link for c in found.checks if not c.ok]
    assert broken == [*(f"model {m}" for m in sorted(decision.manifest["model_hashes"])), "features of the day"]
    shown = runner.invoke(app, ["lineage", child])
    assert shown.exit_code == 1, shown.output
    assert decision.version in shown.output and "MISSING" in shown.output and "model hashes" in shown.output
    assert "MISMATCH" in shown.output and "no longer matches" in shown.output
    unknown = runner.invoke(app, ["lineage", "nope"])
    assert unknown.exit_code == 1 and "no child order 'nope'" in unknown.output
