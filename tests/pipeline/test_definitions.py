"""The definitions load and carry what the UI shows: partitioned assets, blocking checks, jobs."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np

from assets.definitions import defs
from assets.defs.ingest.assets import GATE_CHECK, SCHEMA_CHECK, raw_bars
from mem_pipeline.ingest.quality.rules import RULE_NAMES


def test_assets_and_groups() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_bars", "stg_market__bars"} <= keys
    assert graph.get(dg.AssetKey("raw_bars")).group_name == "ingest"
    assert graph.get(dg.AssetKey("stg_market__bars")).group_name == "staging"
    # dbt's source maps onto the ingest asset: lineage is one graph, not two.
    assert dg.AssetKey("raw_bars") in graph.get(dg.AssetKey("stg_market__bars")).parent_keys


def test_raw_bars_checks_are_blocking_and_cover_every_rule() -> None:
    specs = {spec.name: spec for spec in raw_bars.check_specs}
    assert set(specs) == {*RULE_NAMES, SCHEMA_CHECK, GATE_CHECK}
    assert all(spec.blocking for spec in specs.values())


def test_dbt_tests_are_asset_checks() -> None:
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key.path == ["stg_market__bars"]}
    assert {
        "unique_stg_market__bars_bar_id",
        "not_null_stg_market__bars_bar_id",
        "assert_stg_bars_ohlc_consistent",
    } <= checks


def test_history_is_yearly_and_decision_days_are_trading_days() -> None:
    """20 years of history are 20 partitions (20 events per asset, not 5,216); a decision day is a weekday, and
    each day reads the year that holds it."""
    from assets.defs.risk.assets import risk_limits

    years = raw_bars.partitions_def.get_partition_keys()
    assert years == [str(y) for y in range(1999, 2019)]
    assert raw_bars.backfill_policy == dg.BackfillPolicy.single_run()
    days = risk_limits.partitions_def.get_partition_keys()
    assert days[0] == "1999-01-04" and days[-1] == "2018-12-31"
    assert all(dt.date.fromisoformat(k).weekday() < 5 for k in days)
    assert len(days) == int(np.busday_count("1999-01-04", "2019-01-01"))
    graph = defs.resolve_asset_graph()
    upstream = graph.get_parent_partition_keys_for_child(
        "2010-06-30", dg.AssetKey("fct_features_daily"), dg.AssetKey("risk_limits")
    )
    assert upstream.partitions_subset.get_partition_keys() == ["2010"]


#: What each job materializes: the ingest → features → models → decisions → execution chain, one job per stage
#: (risk limits run with the decision they size), plus the fills job that books the day's fills.
JOBS = {
    "ingest": {"raw_bars"},
    "features": {"stg_market__bars", "int_bars__returns", "int_market__daily", "fct_features_daily"},
    "labels": {"fct_labels_daily"},
    "models": {"regime_model", "vol_forecasts", "slippage_model", "signal_model", "decision_memory"},
    "decisions": {"risk_limits", "trade_decisions"},
    "execute_orders": {"executed_orders"},
    "fills": {"order_fills"},
    "tune_backtest": {"backtest_tuning"},
    "run_backtest": {"backtest"},
    "report_backtest": {"backtest_report"},
    "new_day": {"raw_bars", "stg_market__bars", "int_bars__returns", "int_market__daily", "fct_features_daily"},
    "trading_day": {"order_fills", "risk_limits", "trade_decisions"},
}
#: History by year (ingest, the incremental features); a decision, its execution and the fills by day.
DAILY_JOBS = {"ingest", "features", "decisions", "execute_orders", "fills", "new_day", "trading_day"}
#: Partitioned, but not by day: the backtest by variant.
OTHER_PARTITIONED = {"run_backtest"}


def test_jobs_select_their_stage_and_daily_jobs_are_partitioned() -> None:
    names = {job.name for job in defs.jobs if not job.name.startswith("__")}
    assert names == set(JOBS)
    for name, expected in JOBS.items():
        job = defs.resolve_job_def(name)
        selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
        assert selected == expected, name
        assert (job.partitions_def is not None) == (name in DAILY_JOBS | OTHER_PARTITIONED), name


def test_the_backtest_is_partitioned_by_variant_and_a_backfill_is_one_run() -> None:
    from assets.defs.backtest.assets import backtest
    from mem_pipeline.backtest.variants import ABLATIONS

    keys = backtest.partitions_def.get_partition_keys()
    assert {"mem", "static", "buy_and_hold", "oracle", *ABLATIONS} == set(keys) and len(ABLATIONS) == 7
    assert backtest.backfill_policy == dg.BackfillPolicy.single_run()


def test_schedules_and_the_execution_sensor() -> None:
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {"labels_schedule", "models_schedule", "report_backtest_schedule"}
    assert schedules["report_backtest_schedule"].cron_schedule == "0 7 * * 0"  # after Saturday's refits
    # labels are rebuilt before the models refit on them, both weekly
    assert (schedules["labels_schedule"].cron_schedule, schedules["models_schedule"].cron_schedule) == (
        "30 5 * * 6",
        "0 6 * * 6",
    )
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {"new_decisions", "new_market_day"}
    assert sensors["new_decisions"].job_name == "execute_orders"
    assert {j.name for j in sensors["new_market_day"].jobs} == {"new_day", "trading_day"}


def test_the_code_location_loads_as_the_code_server_loads_it() -> None:
    """The UI and the daemon load the repository, which refuses an op and a job of one name; resolving jobs
    one by one (what in-process runs do) does not check that."""
    repository = defs.get_repository_def()
    assert {job.name for job in repository.get_all_jobs()} >= set(JOBS)


#: The checks of every Python asset, by name: what must hold before anything downstream may run.
CHECKS = {
    "raw_bars": {
        "monotone_time",
        "no_future_dates",
        "not_null",
        "ohlc_consistent",
        "plausible_returns",
        "positive_prices",
        "rejected_share_within_limit",
        "schema_and_dtypes",
        "spread_consistent",
        "unique_symbol_date",
        "volume_non_negative",
    },
    "regime_model": {"converged", "finite_parameters", "regimes_separated"},
    "vol_forecasts": {"finite_positive_forecasts", "fitted_share"},
    "slippage_model": {"beats_square_root_law", "mae_within_noise_floor", "p90_coverage"},
    "signal_model": {"beats_base_rate", "calibrated", "probabilities_valid"},
    "decision_memory": {"outcomes_after_decisions"},
    "risk_limits": {"limits_finite_and_positive"},
    "trade_decisions": {"cvar_within_budget", "finite_sizes", "no_new_risk_when_killed", "orders_within_limits"},
    "executed_orders": {"every_order_accounted_for", "ledger_matches_broker"},
    "order_fills": {"fills_booked_in_ledger"},
}
#: Checks that report without stopping the chain (a model that does not beat its baseline still publishes).
WARNINGS = {
    ("slippage_model", "beats_square_root_law"),
    ("slippage_model", "p90_coverage"),
    ("signal_model", "beats_base_rate"),
}


def test_every_python_asset_has_its_named_checks() -> None:
    graph = defs.resolve_asset_graph()
    found: dict[str, set[str]] = {}
    for key in graph.asset_check_keys:
        asset = key.asset_key.to_user_string()
        if asset in CHECKS:
            found.setdefault(asset, set()).add(key.name)
    assert found == CHECKS
    specs = {
        (spec.asset_key.to_user_string(), spec.name): spec
        for assets_def in defs.assets
        if isinstance(assets_def, dg.AssetsDefinition)
        for spec in assets_def.check_specs
    }
    for asset, names in CHECKS.items():
        for name in names:
            assert specs[(asset, name)].blocking == ((asset, name) not in WARNINGS), (asset, name)


def test_the_dbt_resource_reports_the_version_the_executable_reports() -> None:
    """DbtResource reads dbt's version from the installed package instead of running ``dbt --version``."""
    import re
    import subprocess

    from dagster_dbt import DbtCliResource

    from assets.definitions import resources

    dbt = resources.resources["dbt"]
    out = subprocess.run([dbt.dbt_executable, "--version"], capture_output=True, text=True, check=True).stdout
    asked = DbtCliResource(project_dir=dbt.project_dir, dbt_executable=dbt.dbt_executable)._cli_version
    assert str(dbt._cli_version) == re.search(r"(\d+\.\d+\.\d+)", out).group(1) == str(asked)


SNAPSHOT = """
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value
from assets.definitions import defs
print(serialize_value(RepositorySnap.from_def(defs.get_repository_def())))
"""


def test_the_ui_sees_the_broker_credentials_and_ledger_url_as_variable_names_only(tmp_path) -> None:
    """What the code server sends the UI (the repository snapshot, which the Launchpad and the resources page
    show) names the environment variables and holds none of their values."""
    import json
    import os
    import subprocess
    import sys

    secrets = {"MEM_CCXT_API_KEY": "key-7f3a9", "MEM_CCXT_SECRET": "secret-c41d2",
               "MEM_LEDGER_URL": "postgresql+psycopg://mem:pw-88e1@127.0.0.1:1/mem"}  # fmt: skip
    env = {**os.environ, **secrets, "MEM_BROKER": "ccxt", "DAGSTER_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", SNAPSHOT], env=env, capture_output=True, text=True, check=True).stdout
    for value in secrets.values():
        assert value not in out
    snapshot = json.loads(out)
    [broker] = [r for r in snapshot["external_resource_data"] if r["name"] == "broker"]
    configured = json.dumps(broker["configured_values"])
    assert all(name in configured for name in ("MEM_CCXT_API_KEY", "MEM_CCXT_SECRET", "MEM_BROKER"))


def test_the_broker_resource_hands_its_credentials_to_the_exchange() -> None:
    from mem_pipeline.execution.brokers.ccxt_broker import CcxtBrokerConfig, build_trading_exchange

    exchange = build_trading_exchange(CcxtBrokerConfig(sandbox=False), {"apiKey": "k1", "secret": "s1"})
    assert (exchange.apiKey, exchange.secret) == ("k1", "s1")


def test_raw_bars_and_decisions_have_freshness_policies() -> None:
    graph = defs.resolve_asset_graph()
    for key in ("raw_bars", "trade_decisions"):
        policy = graph.get(dg.AssetKey(key)).freshness_policy
        assert policy is not None and policy.fail_window.to_timedelta() == dt.timedelta(days=4), key
