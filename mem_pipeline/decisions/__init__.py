"""Trade decisions: sizing through the risk limits, orders with costs and schedules, content-hash
versions and an append-only store. Pure Python; the Dagster assets only call ``decide`` and the store."""

from mem_pipeline.decisions.checks import (
    CheckResult,
    check_cvar_within_budget,
    check_finite_sizes,
    check_no_new_risk_when_killed,
    check_orders_within_limits,
    run_checks,
)
from mem_pipeline.decisions.config import DecisionConfig
from mem_pipeline.decisions.decide import FEATURE_COLUMNS, CostModel, decide
from mem_pipeline.decisions.schedule import choose_schedule
from mem_pipeline.decisions.store import DecisionStore
from mem_pipeline.decisions.types import TARGET_SCHEMA, DecisionError, Order, Schedule, Side, TradeDecision
from mem_pipeline.decisions.version import code_version, frame_digest, version_of

__all__ = [
    "FEATURE_COLUMNS",
    "TARGET_SCHEMA",
    "CheckResult",
    "CostModel",
    "DecisionConfig",
    "DecisionError",
    "DecisionStore",
    "Order",
    "Schedule",
    "Side",
    "TradeDecision",
    "check_cvar_within_budget",
    "check_finite_sizes",
    "check_no_new_risk_when_killed",
    "check_orders_within_limits",
    "choose_schedule",
    "code_version",
    "decide",
    "frame_digest",
    "run_checks",
    "version_of",
]
