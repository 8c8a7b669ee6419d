"""MEM's Dagster definitions, loaded by ``workspace.yaml``: each stage's definitions, merged, plus resources."""

from __future__ import annotations

import dagster as dg

from assets.defs import backtest, decisions, execution, features, ingest, loop, models, risk
from assets.defs.features.dbt import DBT_PROJECT
from assets.resources import DbtResource, LakeResource, MarketDataResource

STAGES = (ingest, features, models, risk, decisions, execution, backtest, loop)

resources = dg.Definitions(
    # Steps run in the run's own process: a step process per asset would import the whole code location again
    # (about 4 s each), and the warehouse's single writer serializes most steps anyway.
    executor=dg.in_process_executor,
    resources={
        "lake": LakeResource(),
        "market": MarketDataResource(),
        "dbt": DbtResource.for_project(DBT_PROJECT),
    },
)

defs = dg.Definitions.merge(*(stage.defs for stage in STAGES), resources)
