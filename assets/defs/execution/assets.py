"""Execution: ``executed_orders`` submits one decision version's orders exactly once; ``order_fills`` books
the broker's fills (the paper broker fills open orders against each new day's bars).

Exactly once comes from the ledger, not from Dagster (which delivers at least once): client order ids are
deterministic per (decision version, symbol, slice) and written before sending; a rerun of the same version
reconciles with the broker and sends nothing new. The broker and the ledger are Dagster resources (``broker``,
``ledger``): credentials (``MEM_CCXT_API_KEY``/``MEM_CCXT_SECRET``) and the ledger URL (``MEM_LEDGER_URL``) come
only from the environment, as ``dg.EnvVar``s.
"""

import datetime as dt

import dagster as dg
import polars as pl

from assets.defs.decisions.assets import trade_decisions
from assets.metadata import check, markdown_table
from assets.partitions import DAILY, window
from assets.pools import LEDGER_POOL
from assets.resources import BrokerResource, LakeResource, LedgerResource, MarketDataResource
from mem_pipeline.decisions.inputs import load_cost_model
from mem_pipeline.decisions.store import DecisionStore
from mem_pipeline.execution.fills import book_fills
from mem_pipeline.execution.market import market_snapshot
from mem_pipeline.ingest import lake as lake_io

HISTORY_DAYS = 45  # calendar days of bars the paper broker sees for ADV and vol (20 trading days needed)


class ExecuteConfig(dg.Config):
    """``decision_version``: the version to execute (the sensor sets it); empty: the partition's latest."""

    decision_version: str = ""


@dg.asset(
    group_name="execution",
    kinds={"sqlalchemy"},
    partitions_def=DAILY,
    deps=[trade_decisions],
    pool=LEDGER_POOL,
    check_specs=[
        dg.AssetCheckSpec("ledger_matches_broker", asset="executed_orders", blocking=True),
        dg.AssetCheckSpec("every_order_accounted_for", asset="executed_orders", blocking=True),
    ],
    description="The decision's orders through the pre-trade gate to the broker, recorded in the ledger first.",
)
def executed_orders(
    context: dg.AssetExecutionContext,
    config: ExecuteConfig,
    lake: LakeResource,
    broker: BrokerResource,
    ledger: LedgerResource,
):
    paths = lake.paths()
    day, _ = window(context)
    store = DecisionStore(paths.decisions)
    version = config.decision_version or store.latest(day)
    if version is None:
        raise dg.Failure(f"no stored trade decision for {day}: materialize trade_decisions for it first")
    decision = store.read(version)
    orders = decision.orders
    if decision.decision_date != day:
        raise dg.Failure(f"decision {version} is for {decision.decision_date}, not partition {day}")
    runtime = broker.runtime(paths, ledger, decision.limits)
    try:
        held = list(runtime.ledger.exposure())  # positions and the rest of live orders: the gate values all
        prices, stats = market_snapshot(paths, day, sorted(set(orders["symbol"].to_list()) | set(held)))
        result = runtime.run(
            orders,
            last_prices=prices,
            market=stats,
            # the slippage model the decision was versioned with, not whichever is newest
            cost_model=load_cost_model(paths, decision.manifest["model_hashes"]["slippage"]),
        )
        # the post-run check reconciles under the run lock too (no bars: nothing is filled here)
        ttl = runtime.config.engine.lock_ttl_seconds
        after = book_fills(runtime.ledger, runtime.broker, lock_ttl_seconds=ttl).reconcile
        children = runtime.ledger.orders_frame()
        gate_limits = runtime.gate.limits.to_dict()
        parents = runtime.ledger.parents_frame()  # after the run
    finally:
        runtime.close()
    mine = children.head(0)
    if children.height:
        ours = parents.filter(pl.col("decision_version") == version).select("parent_id")
        mine = children.join(ours, on="parent_id", how="semi")
    mismatches = len(after.missing_at_broker) + len(after.conflicts) + len(after.unresolved)
    yield check("ledger_matches_broker", mismatches == 0, float(mismatches), 0.0, **after.summary())
    # Every parent of the decision is in the ledger, approved (with children) or rejected by the gate.
    booked = set(parents.filter(pl.col("decision_version") == version)["symbol"]) if parents.height else set()
    missing = len(set(orders["symbol"]) - booked)
    yield check("every_order_accounted_for", missing == 0, float(missing), 0.0)
    summary = result.summary()
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "decision_version": version,
            "parents": orders.height,
            "submitted": summary["submitted"],
            "gate_rejections": len(summary["gate_rejections"]),
            "gate_limits": dg.MetadataValue.json(gate_limits),
            "latency_s": summary["latency_s"],
            "summary": dg.MetadataValue.json(summary),
            "child_orders": dg.MetadataValue.md(
                markdown_table(mine.select("client_id", "symbol", "side", "quantity", "state"), 15)
                if mine.height
                else "none"
            ),
        },
    )


@dg.asset(
    group_name="execution",
    kinds={"sqlalchemy"},
    partitions_def=DAILY,
    # Upstream of the day's trade_decisions (positions), so it cannot also depend on executed_orders in the
    # graph: the orders it fills reach it through the ledger and the broker's state.
    deps=[dg.AssetKey("raw_bars")],
    pool=LEDGER_POOL,
    check_specs=[dg.AssetCheckSpec("fills_booked_in_ledger", asset="order_fills", blocking=True)],
    description="Broker fills booked into the ledger; the paper broker fills open orders against the day's bars.",
)
def order_fills(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    market: MarketDataResource,
    broker: BrokerResource,
    ledger: LedgerResource,
):
    paths = lake.paths()
    day, _ = window(context)
    runtime = broker.runtime(paths, ledger)
    try:
        start = day - dt.timedelta(days=HISTORY_DAYS)
        booked = book_fills(  # under the ledger's run lock, like execute
            runtime.ledger,
            runtime.broker,
            lambda: lake_io.read_bars(paths.bars(market.source), start, day),
            lock_ttl_seconds=runtime.config.engine.lock_ttl_seconds,
        )
        filled, report = booked.broker_fills, booked.reconcile
        fills = runtime.ledger.fills_for_training()
        positions = runtime.ledger.positions()
    finally:
        runtime.close()
    unbooked = len(report.unresolved) + len(report.conflicts)
    yield check("fills_booked_in_ledger", unbooked == 0, float(unbooked), 0.0, **report.summary())
    yield dg.MaterializeResult(
        metadata={
            "broker_fills_today": filled,
            "fills_booked": report.new_fills,
            "ledger_fills_total": fills.height,
            "positions": dg.MetadataValue.md(markdown_table(positions, 15) if positions.height else "flat"),
        },
    )
