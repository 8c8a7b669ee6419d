"""``trade_decisions``: the day's versioned decision — targets, orders, expected costs, schedules.

It reads what ``risk_limits`` stored for the day (the inputs gathered once and the risk assessment) and calls
the decision kernel. The decision's version is the content hash of everything it was computed from (partition,
input digests, model artifact hashes, parameters, code); it is the Dagster data version and names the file under
``data/decisions/<date>/<version>.parquet``. The same inputs give the same version and no new file.
"""

import datetime as dt

import dagster as dg

from assets.defs.risk.assets import INPUTS_DIR, risk_limits
from assets.metadata import markdown_table
from assets.partitions import DAILY, window
from assets.pools import WAREHOUSE_POOL
from assets.resources import LakeResource
from mem_pipeline.core.params import section
from mem_pipeline.decisions.checks import run_checks
from mem_pipeline.decisions.config import DecisionConfig
from mem_pipeline.decisions.decide import decide
from mem_pipeline.decisions.inputs import DecisionInputs, load_cost_model
from mem_pipeline.decisions.store import DecisionStore
from mem_pipeline.risk.assessment import RiskAssessment
from mem_pipeline.risk.config import RiskConfig

CHECKS = ("orders_within_limits", "cvar_within_budget", "finite_sizes", "no_new_risk_when_killed")


@dg.asset(
    group_name="decisions",
    kinds={"polars"},
    partitions_def=DAILY,
    deps=[risk_limits],
    pool=WAREHOUSE_POOL,
    check_specs=[dg.AssetCheckSpec(name, asset="trade_decisions", blocking=True) for name in CHECKS],
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(days=4), warn_window=dt.timedelta(hours=30)
    ),
    description="Target positions (signal x fractional Kelly x the day's limits) and the orders to reach them, "
    "versioned.",
)
def trade_decisions(context: dg.AssetExecutionContext, lake: LakeResource):
    paths = lake.paths()
    day, _ = window(context)
    risk_config = RiskConfig.from_params(section("risk"))
    folder = paths.risk_day(day)
    inputs = DecisionInputs.load(folder / INPUTS_DIR)
    assessment = RiskAssessment.load(folder, inputs.returns, inputs.vol_forecasts, risk_config)
    decision = decide(
        inputs,
        assessment,
        load_cost_model(paths, inputs.model_hashes["slippage"]),
        risk_config,
        DecisionConfig.from_params(section("decisions")),
    )
    results = run_checks(decision, assessment)
    for name in CHECKS:
        result = results[name]
        yield dg.AssetCheckResult(
            check_name=name,
            passed=bool(result.passed),
            metadata={"actual": float(result.actual), "threshold": float(result.threshold)},
        )
    path = DecisionStore(paths.decisions).write(decision) if all(r.passed for r in results.values()) else None
    report = {k: v for k, v in decision.report.items() if not isinstance(v, dict)}
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(decision.version),
        metadata={
            "decision_version": decision.version,
            "path": str(path) if path else "not stored: a blocking check failed",
            "orders": decision.orders.height,
            "report": dg.MetadataValue.json(report),
            "model_hashes": dg.MetadataValue.json(inputs.model_hashes),
            # what the decision read, down to the day's raw lake file (`mem lineage` checks each hash)
            "data_versions": dg.MetadataValue.json(inputs.data_versions),
            "orders_preview": dg.MetadataValue.md(markdown_table(decision.orders.drop("decision_version"), 15)),
            "binding_limits": dg.MetadataValue.md(
                markdown_table(decision.targets.group_by("binding_limit").len().sort("len", descending=True))
            ),
        },
    )
