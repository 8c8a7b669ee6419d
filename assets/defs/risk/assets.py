"""``risk_limits``: the day's limits and per-symbol risk, computed from data up to the partition only."""

import hashlib

import dagster as dg
import numpy as np

from assets.metadata import check, markdown_table
from assets.partitions import DAILY, window
from assets.resources import LakeResource
from mem_pipeline.core.params import section
from mem_pipeline.decisions.inputs import load_decision_inputs
from mem_pipeline.decisions.portfolio import portfolio_state
from mem_pipeline.ingest.lake import atomic_write_parquet
from mem_pipeline.models.artifacts import write_json
from mem_pipeline.risk.config import RiskConfig
from mem_pipeline.risk.report import risk_report

DECISION_POOL = "duckdb_warehouse"  # reads the warehouse: never while dbt writes it


@dg.asset(
    group_name="risk",
    kinds={"numpy", "scikit-learn"},
    partitions_def=DAILY,
    deps=[
        dg.AssetKey("fct_features_daily"),
        dg.AssetKey("regime_model"),
        dg.AssetKey("vol_forecasts"),
        dg.AssetKey("signal_model"),
    ],
    pool=DECISION_POOL,
    check_specs=[dg.AssetCheckSpec("limits_finite_and_positive", asset="risk_limits", blocking=True)],
    description="Per-symbol and portfolio limits (caps, CVaR budget, regime multiplier, kill switch) for the day.",
)
def risk_limits(context: dg.AssetExecutionContext, lake: LakeResource):
    paths = lake.paths()
    day, _ = window(context)
    inputs = load_decision_inputs(paths, day)
    positions, equity_curve = portfolio_state(paths, day)
    config = RiskConfig.from_params(section("risk"))
    report = risk_report(
        day,
        inputs.features["symbol"].to_list(),
        inputs.returns,
        inputs.vol_forecasts,
        inputs.regime_probabilities,
        equity_curve,
        config,
    )
    target = paths.data / "risk" / day.isoformat()
    digest = atomic_write_parquet(report.symbols, target / "symbols.parquet")
    write_json(target / "limits.json", report.summary())
    digest = hashlib.sha256((digest + (target / "limits.json").read_text()).encode()).hexdigest()  # table + limits
    limits = report.limits
    caps = np.array([limits.symbol_cap, limits.gross_cap, limits.net_cap, limits.cvar_budget])
    finite = bool(np.isfinite(caps).all() and (caps > 0).all())
    yield check("limits_finite_and_positive", finite, float(caps.min()), 0.0, **limits.to_dict())
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(digest[:16]),
        metadata={
            "limits": dg.MetadataValue.json(report.summary()),
            "kill_switch": limits.kill_switch,
            "regime_multiplier": report.regime_multiplier,
            "symbols": report.symbols.height,
            "skipped_warm_up": len(inputs.skipped),
            "riskiest": dg.MetadataValue.md(
                markdown_table(report.symbols.sort("cvar_long_per_unit", descending=True, nulls_last=True), 10)
            ),
            "path": str(target),
        },
    )
