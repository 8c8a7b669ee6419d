"""``make demo``: materialize every asset over the configured source's whole calendar, then summarize.

Runs go through the project's Dagster instance (``DAGSTER_HOME``), so they appear in the UI's run
history with their checks and metadata exactly as scheduled runs would.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from assets.instance import ensure_dagster_home
from assets.partitions import DAILY
from assets.run import run_job
from mem_pipeline import lake
from mem_pipeline.models.artifacts import read_json
from mem_pipeline.paths import Paths
from mem_pipeline.quarantine import read_rejected
from mem_pipeline.sources.registry import configured_source_name


def main() -> None:
    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    keys = DAILY.get_partition_keys()  # the ingest job runs them all as one backfill run
    source = configured_source_name()
    print(f"MEM demo: source={source}, {len(keys)} daily partitions {keys[0]} .. {keys[-1]} (one backfill run)")
    t_ingest = run_job("ingest", instance)
    t_features = run_job("features", instance)
    t_features += run_job("features_daily", instance)  # the incremental marts, the whole calendar in one run
    t_models = run_job("models", instance)

    paths = Paths.from_env()
    bars = lake.read_bars(paths.bars(source))
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

    print(f"\ndbt (features, features_daily): {t_features:.1f}s  -> {paths.warehouse / 'mem.duckdb'}")
    with duckdb.connect(str(paths.warehouse / "mem.duckdb"), read_only=True) as con:
        tables = con.execute(
            "select table_name, table_type from information_schema.tables where table_schema = 'main' order by 1"
        ).fetchall()
        for name, kind in tables:
            rows = con.execute(f'select count(*) from "{name}"').fetchone()[0]  # names come from the catalog
            print(f"  {name:<19} {rows:>9,} rows ({kind.lower()})")
    print(f"\nmodels: {t_models:.1f}s")
    for name in ("regime", "volatility", "slippage"):
        pointer = paths.models / name / "current.json"
        if pointer.exists():
            artifact = pointer.parent / read_json(pointer)["artifact"]
            print(f"  {name:<19} {artifact}")
    sample = bars.filter(pl.col("symbol") == "^GSPC").sort("date").tail(1)
    if sample.height:
        print(f"\nlast ^GSPC bar: {sample.select('date', 'open', 'high', 'low', 'close').row(0)}")
    print("\nOpen the Dagster UI with `make ui` (http://127.0.0.1:3000): assets, checks, runs and lineage.")


if __name__ == "__main__":
    main()
