"""``make demo``: the whole path on the configured source, then a summary.

1. ingest and features over the source's whole calendar (one backfill run each);
2. models refitted as of the *decision day*: five trading days before the last day on which the source's
   full cross-section trades (on the bundled data: 2010-08-13, inside the 524-stock year), so that the
   paper broker has later bars to fill against;
3. risk limits and the trade decision for that day, the ``new_decisions`` sensor's tick, one
   ``execute_orders`` run per requested decision version (``run_key`` = version), then ``fills`` for the
   following days;
4. a quick backtest (the last quarter of the cross-section, 30 symbols, one tuning trial, every variant) and its
   report, so that every asset of the definitions has a materialization.

Runs go through the project's Dagster instance (``DAGSTER_HOME``), so they appear in the UI's run
history with their checks and metadata exactly as scheduled runs would.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import polars as pl

from assets.defs.execution.sensors import new_decisions
from assets.instance import ensure_dagster_home
from assets.partitions import DAILY, HISTORY
from assets.resources import LakeResource
from assets.run import run_job
from mem_pipeline.core.paths import Paths
from mem_pipeline.decisions.store import DecisionStore
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.ingest import lake
from mem_pipeline.ingest.quarantine import read_rejected
from mem_pipeline.ingest.sources.registry import configured_source_name
from mem_pipeline.models.artifacts import read_json


def main() -> None:
    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    years, days = HISTORY.get_partition_keys(), DAILY.get_partition_keys()
    source = configured_source_name()
    print(f"MEM demo: source={source}, history {years[0]} .. {years[-1]} ({len(years)} yearly partitions, one "
          f"backfill run), {len(days):,} trading days")  # fmt: skip
    t_ingest = run_job("ingest", instance)
    t_features = run_job("features", instance)  # views and incremental models, the whole calendar in one run
    t_features += run_job("labels", instance)
    paths = Paths.from_env()
    bars = lake.read_bars(paths.bars(source))
    day, later = decision_day(bars)
    as_of = {"ops": {n: {"config": {"as_of": day}} for n in ("regime_model", "vol_forecasts", "signal_model")}}
    t_models = run_job("models", instance, run_config=as_of)
    t_decide = run_job("decisions", instance, day, day)
    tick = new_decisions(dg.build_sensor_context(instance=instance, resources={"lake": LakeResource()}))
    t_execute = sum(
        run_job(
            "execute_orders", instance, r.partition_key, r.partition_key, r.run_config, {"dagster/run_key": r.run_key}
        )
        for r in tick.run_requests
    )
    t_fills = sum(run_job("fills", instance, key, key) for key in later)
    narrow = demo_backtest_window(bars)
    t_backtest = run_job("tune_backtest", instance, run_config={"ops": {"backtest_tuning": {"config": narrow}}})
    # every variant in one run
    t_backtest += run_job("run_backtest", instance, run_config={"ops": {"backtest": {"config": narrow}}})
    t_backtest += run_job("report_backtest", instance)

    rejected = read_rejected(paths.quarantine / source)
    print(
        f"\nraw_bars          {bars.height:>9,} rows, {bars['symbol'].n_unique()} symbols, "
        f"{bars['date'].n_unique():,} trading days  ({t_ingest:.1f}s)  -> {paths.bars(source)}"
    )
    if rejected.height:
        by_rule = rejected.group_by("rule").len().sort("len", descending=True)
        rules = ", ".join(f"{r} {n}" for r, n in by_rule.iter_rows())
        print(f"quarantined       {rejected.height:>9,} rows ({rules})  -> {paths.quarantine / source}")
    import duckdb

    print(f"\ndbt (features, labels): {t_features:.1f}s  -> {paths.warehouse / 'mem.duckdb'}")
    with duckdb.connect(str(paths.warehouse / "mem.duckdb"), read_only=True) as con:
        tables = con.execute(
            "select table_name, table_type from information_schema.tables where table_schema = 'main' order by 1"
        ).fetchall()
        for name, kind in tables:
            rows = con.execute(f'select count(*) from "{name}"').fetchone()[0]  # names come from the catalog
            print(f"  {name:<19} {rows:>9,} rows ({kind.lower()})")
    print(f"\nmodels: {t_models:.1f}s")
    for name in ("regime", "volatility", "slippage", "signal"):
        pointer = paths.models / name / "current.json"
        if pointer.exists():
            artifact = pointer.parent / read_json(pointer)["artifact"]
            print(f"  {name:<19} {artifact}")
    store = DecisionStore(paths.decisions)
    version = store.latest(dt.date.fromisoformat(day))
    orders = store.read_orders(version) if version else pl.DataFrame()
    print(f"\ndecision {day}: version {version}, {orders.height} orders ({t_decide:.1f}s)  -> {paths.decisions}")
    if orders.height:
        by = orders.group_by("side", "schedule").agg(pl.len(), pl.col("notional").sum().round(2)).sort("side")
        print("  " + ", ".join(f"{s} {k}: {n} orders, {v:,.2f}" for s, k, n, v in by.iter_rows()))
    ledger = Ledger.open(None, paths=paths)
    try:
        children, positions = ledger.orders_frame(), ledger.positions()
        fills = ledger.fills_for_training()
    finally:
        ledger.close()
    states = children.group_by("state").len().sort("state").iter_rows() if children.height else []
    print(
        f"execution: {len(tick.run_requests)} run(s) requested by the sensor ({t_execute:.1f}s); "
        f"child orders by state: {dict(states)}; fills after {len(later)} days: {fills.height} ({t_fills:.1f}s)"
    )
    print(f"  positions: {positions.height} symbols  -> {paths.ledger}")
    table = pl.read_csv(paths.reports / "backtest" / "variants.csv")
    sharpes = ", ".join(f"{v} {s:.2f}" for v, s in table.select("variant", "sharpe").iter_rows())
    print(
        f"\nbacktest (a quick look: {len(narrow['symbols'])} symbols, {narrow['start']} .. {narrow['end']}, "
        f"{narrow['n_trials']} tuning trial; `make backtest` runs params.yaml's): {t_backtest:.1f}s"
        f"\n  Sharpe: {sharpes}\n  -> {paths.reports / 'backtest' / 'report.md'}"
    )
    print("\nOpen the Dagster UI with `make ui` (http://127.0.0.1:3000): assets, checks, runs and lineage.")


RUN_KEY = "dagster/run_key"
DEMO_BACKTEST_DAYS, DEMO_BACKTEST_SYMBOLS = 63, 30


def demo_backtest_window(bars: pl.DataFrame) -> dict:
    """The demo's quick backtest: the last quarter of the full cross-section (on the bundled data, up to
    2010-08-20), its first 30 symbols by name, one tuning trial; ``make backtest`` runs the configured window."""
    last = last_full_day(bars)
    symbols = bars.filter(pl.col("date") == last)["symbol"].sort().head(DEMO_BACKTEST_SYMBOLS).to_list()
    days = bars["date"].unique().sort()
    days = days.filter(days <= last)
    return {
        "start": days[-DEMO_BACKTEST_DAYS].isoformat(),
        "end": last.isoformat(),
        "symbols": symbols,
        "n_trials": 1,
    }


def last_full_day(bars: pl.DataFrame) -> dt.date:
    """The last day with at least 90% of the largest cross-section (on the bundled data, 2010-08-20)."""
    counts = bars.group_by("date").len()
    return counts.filter(pl.col("len") >= 0.9 * counts["len"].max())["date"].max()


def decision_day(bars: pl.DataFrame, days_after: int = 5) -> tuple[str, list[str]]:
    """The demo's decision day (``days_after`` trading days before ``last_full_day``) and the partition keys
    after it, up to that day."""
    full = last_full_day(bars)
    keys = [k for k in DAILY.get_partition_keys() if k <= full.isoformat()]
    return keys[-days_after - 1], keys[-days_after:]


if __name__ == "__main__":
    main()
