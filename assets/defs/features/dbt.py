"""The dbt project as Dagster assets: one translator maps groups, keys and tests (as asset checks)."""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject, dbt_assets
from pydantic import Field

from assets.partitions import HISTORY, HistoryWindowConfig, history_window
from assets.pools import WAREHOUSE_POOL
from assets.resources import DbtResource, LakeResource, MarketDataResource
from mem_pipeline.core.paths import DBT_PROJECT_DIR, Paths

DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class MemDbtTranslator(DagsterDbtTranslator):
    """Groups from dbt folders (staging, intermediate, marts); dbt tests become asset checks."""

    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return None
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "features"


def dbt_env(paths: Paths) -> None:
    """dbt's profile and sources read ``MEM_DATA_DIR``; make sure dbt sees ours."""
    os.environ["MEM_DATA_DIR"] = str(paths.data)
    paths.warehouse.mkdir(parents=True, exist_ok=True)


# Two asset definitions, in dependency order: the history (staging views and incremental models, partitioned by
# year), then the full-rebuild tables over it (the labels, unpartitioned). One dbt invocation each.
HISTORY_MODELS = "config.materialized:view config.materialized:incremental"
TABLES = "config.materialized:table"
# One writer at a time: every dbt invocation writes the DuckDB warehouse (see config/dagster.yaml).


class DbtBuildConfig(HistoryWindowConfig):
    """The days to rebuild (the partition window, narrowed by ``start``/``end``); ``full_refresh`` rebuilds the
    incremental models from the whole lake instead."""

    full_refresh: bool = False
    unit_tests: bool = Field(
        default=True,
        description="Run the dbt unit tests (they test the models' SQL on fixed rows, not the data); the daily "
        "loop skips them, as dbt advises for production runs. Data tests always run.",
    )


# What both dbt asset definitions share: the project, the one translator, the warehouse's writer pool.
COMMON = {
    "manifest": DBT_PROJECT.manifest_path,
    "project": DBT_PROJECT,
    "dagster_dbt_translator": MemDbtTranslator(),
    "pool": WAREHOUSE_POOL,
}


WINDOW_ENV = ("MEM_DBT_MIN_DATE", "MEM_DBT_MAX_DATE")


@contextmanager
def rebuilding(start: str = "", end: str = "") -> Iterator[None]:
    """The days dbt invoked inside rebuilds (see macros/incremental_window.sql; empty: the whole lake), restored
    afterwards: the run's process may run other dbt commands later."""
    saved = {name: os.environ.get(name) for name in WINDOW_ENV}
    os.environ.update(dict(zip(WINDOW_ENV, (start, end), strict=True)))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _build(context: dg.AssetExecutionContext, dbt: DbtResource, lake: LakeResource, market: MarketDataResource):
    dbt_env(lake.paths())
    with rebuilding():
        yield from dbt.build(["build", "--vars", json.dumps({"source": market.source})], context)


@dbt_assets(**COMMON, select=TABLES)
def mem_dbt_tables(context: dg.AssetExecutionContext, dbt: DbtResource, lake: LakeResource, market: MarketDataResource):
    """Full-rebuild tables over the incremental ones: the labels (they read the future, so no partition of
    them is ever final). Built before every model refit (the `models` job)."""
    yield from _build(context, dbt, lake, market)


@dbt_assets(**COMMON, select=HISTORY_MODELS, partitions_def=HISTORY, backfill_policy=dg.BackfillPolicy.single_run())
def mem_dbt_history(
    context: dg.AssetExecutionContext,
    dbt: DbtResource,
    lake: LakeResource,
    market: MarketDataResource,
    config: DbtBuildConfig,
):
    """The staging views over the lake and the incremental models (intermediates and the features mart), one dbt
    invocation per run: the run's days become `min_date`/`max_date` (every later stored row that reads them is
    rebuilt too). The views' tests read the whole lake."""
    start, end = history_window(context, config)
    dbt_env(lake.paths())
    args = ["build", "--vars", json.dumps({"source": market.source})]
    if config.full_refresh:
        args.append("--full-refresh")  # the whole history, whatever the window
    if not config.unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    days = ("", "") if config.full_refresh else (start.isoformat(), end.isoformat())
    with rebuilding(*days):
        yield from dbt.build(args, context)
