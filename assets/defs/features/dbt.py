"""The dbt project as Dagster assets: one translator maps groups, keys and tests (as asset checks)."""

import json
import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from assets.resources import LakeResource, MarketDataResource
from mem_pipeline.paths import DBT_PROJECT_DIR, Paths

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
    """dbt's profile and sources read ``MEM_DATA_DIR``; make sure the dbt subprocess sees ours."""
    os.environ["MEM_DATA_DIR"] = str(paths.data)
    paths.warehouse.mkdir(parents=True, exist_ok=True)


@dbt_assets(manifest=DBT_PROJECT.manifest_path, project=DBT_PROJECT, dagster_dbt_translator=MemDbtTranslator())
def mem_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, lake: LakeResource, market: MarketDataResource
):
    """Build (run + test) the selected dbt models over the configured source's lake."""
    dbt_env(lake.paths())
    vars_ = json.dumps({"source": market.source})
    yield from dbt.cli(["build", "--vars", vars_], context=context).stream()
