"""``raw_bars``: the quality-gated parquet lake (a Dagster partition per year, a parquet partition per day).

The rules run inside the asset, before anything is published (write-audit-publish), and are
reported as blocking asset checks: one per rule, one for the schema, one for the gate itself.
A run never shrinks a stored partition unless its config says ``restate: true``.
"""

import datetime as dt

import dagster as dg

from assets.metadata import markdown_table
from assets.partitions import HISTORY, HistoryWindowConfig, history_window
from assets.resources import LakeResource, MarketDataResource
from mem_pipeline.core.errors import SchemaError
from mem_pipeline.core.params import section
from mem_pipeline.ingest.quality.rules import RULES, QualityConfig
from mem_pipeline.ingest.window import IngestResult, ingest_window

ASSET = dg.AssetKey("raw_bars")
SCHEMA_CHECK = "schema_and_dtypes"
GATE_CHECK = "rejected_share_within_limit"

CHECK_SPECS = [
    dg.AssetCheckSpec(SCHEMA_CHECK, asset=ASSET, blocking=True, description="every input reads as daily bars"),
    dg.AssetCheckSpec(
        GATE_CHECK, asset=ASSET, blocking=True, description="rejected rows per date within max_rejected_share"
    ),
    *(dg.AssetCheckSpec(r.name, asset=ASSET, blocking=True, description=r.description) for r in RULES),
]


class RawBarsConfig(HistoryWindowConfig):
    """Run config of ``raw_bars``: the days of the partition window to ingest, and how to publish them."""

    restate: bool = False
    """Replace each published date whole: stored symbols absent from the new data are dropped.
    Off (the default), a stored bar is kept unless the new data holds an accepted bar for its (symbol, date)."""


@dg.asset(
    key=ASSET,
    group_name="ingest",
    partitions_def=HISTORY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=CHECK_SPECS,
    kinds={"parquet", "polars"},
    # materialized each market day by the daily loop: warn after a missed day, fail past a long weekend
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(days=4), warn_window=dt.timedelta(hours=30)
    ),
    description="Daily bars of the configured source (one Dagster partition per year), hive-partitioned by date "
    "under data/raw/<source>/bars.",
)
def raw_bars(context: dg.AssetExecutionContext, config: RawBarsConfig, lake: LakeResource, market: MarketDataResource):
    start, end = history_window(context, config)
    source = market.build()
    paths = lake.paths()
    cfg = QualityConfig.from_params(section("ingest"))
    try:
        result = ingest_window(source, start, end, paths, cfg, restate=config.restate)
    except SchemaError as err:
        yield dg.AssetCheckResult(
            check_name=SCHEMA_CHECK,
            passed=False,
            metadata={"file": err.source_file, "rule": err.rule, "rows": str(list(err.rows[:50])), "error": str(err)},
        )
        raise
    yield dg.AssetCheckResult(check_name=SCHEMA_CHECK, passed=True, metadata={"rows": result.rows_in})
    yield from _check_results(result)
    result.raise_for_gate()
    yield dg.MaterializeResult(asset_key=ASSET, metadata=_metadata(result))


def _check_results(result: IngestResult):
    gate = result.gate
    # Rows breaking a rule are quarantined either way; they block only when the gate refuses the batch.
    severity = dg.AssetCheckSeverity.WARN if gate.passed else dg.AssetCheckSeverity.ERROR
    failing = gate.failing_dates()
    yield dg.AssetCheckResult(
        check_name=GATE_CHECK,
        passed=gate.passed,
        metadata={
            "actual": gate.worst_share,
            "threshold": gate.max_rejected_share,
            "rejected_rows": gate.rejected.height,
            "failing_dates": str(failing["date"].head(20).to_list()),
        },
    )
    for outcome in gate.outcomes:
        yield dg.AssetCheckResult(
            check_name=outcome.name,
            passed=outcome.passed,
            severity=severity,
            metadata={
                "actual": len(outcome.rows),
                "threshold": 0,
                "offending": dg.MetadataValue.md(
                    f"```\n{gate.describe(outcome)[:4000]}\n```" if outcome.rows else "none"
                ),
                "quarantine": str(result.quarantine_dir or ""),
            },
        )


def _metadata(result: IngestResult) -> dict:
    preview = markdown_table(result.gate.accepted.head(10).drop("source_file"))
    return {
        "source": result.source,
        "window": f"{result.start} .. {result.end}",
        "rows_in": result.rows_in,
        "rows_published": result.rows_published,
        "rows_quarantined": result.gate.rejected.height,
        "rows_outside_window": result.rows_outside_window,
        "rows_out_of_order": result.rows_out_of_order,
        "stored_bars_kept": result.stored_kept,
        "stored_bars_dropped": result.stored_dropped,
        "restate": result.restate,
        "publish_mode": (
            "restated: each published date replaced whole, stored symbols absent from the input dropped"
            if result.restate
            else "merged: stored bars not replaced by an accepted new bar were kept"
        ),
        "partitions_written": len(result.published),
        "symbols": result.gate.accepted["symbol"].n_unique(),
        "quarantine": str(result.quarantine_dir or ""),
        "preview": dg.MetadataValue.md(preview),
    }
