"""``risk_limits``: the day's inputs gathered once and its risk assessment, stored for ``trade_decisions``."""

import dagster as dg

from assets.metadata import check, markdown_table
from assets.partitions import DAILY, window
from assets.pools import WAREHOUSE_POOL
from assets.resources import LakeResource, MarketDataResource
from mem_pipeline.core.params import section
from mem_pipeline.decisions.decide import assess_day
from mem_pipeline.decisions.inputs import load_decision_inputs
from mem_pipeline.risk.config import RiskConfig
from mem_pipeline.risk.limits import RiskLimits

INPUTS_DIR = "inputs"


def limits_usable(limits: RiskLimits) -> tuple[bool, float]:
    caps = [limits.symbol_cap, limits.gross_cap, limits.net_cap, limits.cvar_budget]
    return all(c > 0 and c != float("inf") for c in caps), min(caps)


@dg.asset(
    group_name="risk",
    kinds={"numpy", "scikit-learn"},
    partitions_def=DAILY,
    deps=[
        dg.AssetKey("fct_features_daily"),
        dg.AssetKey("regime_model"),
        dg.AssetKey("vol_forecasts"),
        dg.AssetKey("signal_model"),
        dg.AssetKey("slippage_model"),
        # The day's fills are booked before the day's positions and equity are read from the ledger.
        dg.AssetKey("order_fills"),
    ],
    pool=WAREHOUSE_POOL,
    check_specs=[dg.AssetCheckSpec("limits_finite_and_positive", asset="risk_limits", blocking=True)],
    description="The day's inputs (point in time) and its limits: caps scaled to equity, CVaR budget and risk "
    "model, regime multiplier, drawdown kill switch.",
)
def risk_limits(context: dg.AssetExecutionContext, lake: LakeResource, market: MarketDataResource):
    paths = lake.paths()
    day, _ = window(context)
    config = RiskConfig.from_params(section("risk"))
    inputs = load_decision_inputs(paths, day, config, source=market.source)
    assessment = assess_day(inputs, config)
    folder = paths.risk_day(day)
    inputs_digest = inputs.save(folder / INPUTS_DIR)
    digest = assessment.save(folder)
    passed, smallest = limits_usable(assessment.limits)
    yield check("limits_finite_and_positive", passed, smallest, 0.0, **assessment.limits.to_dict())
    yield dg.MaterializeResult(
        data_version=dg.DataVersion((digest + inputs_digest)[:16]),
        metadata={
            "limits": dg.MetadataValue.json({k: v for k, v in assessment.summary().items() if k != "universe"}),
            "kill_switch": assessment.limits.kill_switch,
            "regime_multiplier": assessment.regime_multiplier,
            "symbols": assessment.symbols.height,
            "skipped_warm_up": len(inputs.skipped),
            "model_hashes": dg.MetadataValue.json(inputs.model_hashes),
            "data_versions": dg.MetadataValue.json(inputs.data_versions),
            "riskiest": dg.MetadataValue.md(
                markdown_table(assessment.symbols.sort("cvar_long_per_unit", descending=True, nulls_last=True), 10)
            ),
            "path": str(folder),
        },
    )
