"""``trade_decisions``: the day's versioned decision — targets, orders, expected costs, schedules.

The decision's version is the content hash of everything it was computed from (partition, input digests,
model artifact hashes, parameters, code); it is the Dagster data version and names the file under
``data/decisions/<date>/<version>.parquet``. The same inputs give the same version and no new file.
"""

import dagster as dg

from assets.defs.risk.assets import DECISION_POOL, risk_limits
from assets.metadata import markdown_table
from assets.partitions import DAILY, window
from assets.resources import LakeResource
from mem_pipeline.core.params import section
from mem_pipeline.decisions.checks import run_checks
from mem_pipeline.decisions.config import DecisionConfig
from mem_pipeline.decisions.decide import decide
from mem_pipeline.decisions.inputs import load_decision_inputs
from mem_pipeline.decisions.portfolio import portfolio_state
from mem_pipeline.decisions.store import DecisionStore
from mem_pipeline.risk.config import RiskConfig

CHECKS = ("orders_within_limits", "cvar_within_budget", "finite_sizes", "no_new_risk_when_killed")


@dg.asset(
    group_name="decisions",
    kinds={"polars"},
    partitions_def=DAILY,
    # The day's fills are booked before the day's decision reads positions from the ledger.
    deps=[risk_limits, dg.AssetKey("slippage_model"), dg.AssetKey("order_fills")],
    pool=DECISION_POOL,
    check_specs=[dg.AssetCheckSpec(name, asset="trade_decisions", blocking=True) for name in CHECKS],
    description="Target positions (signal x fractional Kelly x limits) and the orders to reach them, versioned.",
)
def trade_decisions(context: dg.AssetExecutionContext, lake: LakeResource):
    paths = lake.paths()
    day, _ = window(context)
    inputs = load_decision_inputs(paths, day)
    positions, equity_curve = portfolio_state(paths, day)
    decision = decide(
        day,
        features=inputs.features,
        signals=inputs.signals,
        returns=inputs.returns,
        vol_forecasts=inputs.vol_forecasts,
        regime_probabilities=inputs.regime_probabilities,
        positions=positions,
        cost_model=inputs.cost_model,
        equity_curve=equity_curve,
        risk_config=RiskConfig.from_params(section("risk")),
        decision_config=DecisionConfig.from_params(section("decisions")),
        data_versions=inputs.data_versions,
        model_hashes=inputs.model_hashes,
    )
    results = run_checks(decision)
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
            "orders_preview": dg.MetadataValue.md(markdown_table(decision.orders.drop("decision_version"), 15)),
            "binding_limits": dg.MetadataValue.md(
                markdown_table(decision.targets.group_by("binding_limit").len().sort("len", descending=True))
            ),
        },
    )
