"""MEM's Dagster definitions, loaded by ``workspace.yaml``: each stage's definitions, merged, plus resources."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from assets.defs import backtest, decisions, execution, features, ingest, models, risk
from assets.defs.features.dbt import DBT_PROJECT
from assets.resources import LakeResource, MarketDataResource

STAGES = (ingest, features, models, risk, decisions, execution, backtest)

resources = dg.Definitions(
    # Steps run in the run's own process: a step process per asset would import the whole code location again
    # (about 4 s each), and the warehouse's single writer serializes most steps anyway.
    executor=dg.in_process_executor,
    resources={
        "lake": LakeResource(),
        "market": MarketDataResource(),
        # dbt is installed in the same environment as Dagster; do not rely on PATH.
        "dbt": DbtCliResource(project_dir=DBT_PROJECT, dbt_executable=str(Path(sys.executable).parent / "dbt")),
    },
)

defs = dg.Definitions.merge(*(stage.defs for stage in STAGES), resources)
