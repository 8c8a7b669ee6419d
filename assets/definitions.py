"""MEM's Dagster definitions, loaded by ``workspace.yaml``: each stage's definitions, merged, plus resources."""

from __future__ import annotations

import dagster as dg

from assets.defs import backtest, decisions, execution, features, ingest, loop, models, risk
from assets.defs.features.dbt import DBT_PROJECT
from assets.resources import BrokerResource, DbtResource, LakeResource, LedgerResource, MarketDataResource, from_env
from mem_pipeline.core.credentials import API_KEY_ENV, SECRET_ENV
from mem_pipeline.execution.ledger import LEDGER_URL_ENV

STAGES = (ingest, features, models, risk, decisions, execution, backtest, loop)

resources = dg.Definitions(
    # Steps run in the run's own process: a step process per asset would import the whole code location again
    # (about 4 s each), and the warehouse's single writer serializes most steps anyway.
    executor=dg.in_process_executor,
    resources={
        "lake": LakeResource(),
        "market": MarketDataResource(),
        "dbt": DbtResource.for_project(DBT_PROJECT),
        "broker": BrokerResource(
            kind=from_env("MEM_BROKER"), api_key=from_env(API_KEY_ENV), secret=from_env(SECRET_ENV)
        ),
        "ledger": LedgerResource(url=from_env(LEDGER_URL_ENV)),
    },
)

defs = dg.Definitions.merge(*(stage.defs for stage in STAGES), resources)
