"""``new_market_day``: the daily loop. A day the source has and the lake lacks becomes two runs, one after the
other: ``new_day`` (``raw_bars`` and the dbt history narrowed to that day, in its year's partition) and
``trading_day`` (the day's fills, risk limits and trade decision). The ``new_decisions`` sensor then executes
the decision. The next day is taken only once the day's orders were executed, so a replay (the synthetic market
stepping through its calendar) never decides a day before the previous day's orders reached the broker.

Each step is one run with ``run_key`` = step and day (a repeated tick requests nothing new); a failed step is
requested again up to ``MAX_RETRIES`` times, then the loop waits for the operator (the UI shows why). The cursor
is the day in progress. Default: stopped; start it in the UI (Automation) once the history is backfilled.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets.defs.decisions.assets import trade_decisions
from assets.defs.execution.assets import executed_orders, order_fills
from assets.defs.features.dbt import mem_dbt_history
from assets.defs.ingest.assets import raw_bars
from assets.defs.risk.assets import risk_limits
from assets.partitions import DAILY, history_run
from assets.resources import LakeResource, MarketDataResource
from mem_pipeline.ingest import lake as lake_io

new_day_job = dg.define_asset_job("new_day", selection=dg.AssetSelection.assets(raw_bars, mem_dbt_history))
trading_day_job = dg.define_asset_job(
    "trading_day", selection=dg.AssetSelection.assets(order_fills, risk_limits, trade_decisions)
)

DAY_TAG = "mem/trading_day"
MAX_RETRIES = 2
POLL_SECONDS = 1  # the daemon evaluates sensors every 5 s at most; 1 s: at every evaluation


def next_day(after: dt.date) -> str | None:
    """The first trading day of the calendar after ``after`` that has closed (the calendar ends at the last
    closed day), or None."""
    return next((k for k in DAILY.get_partition_keys() if k > after.isoformat()), None)


def _state(runs: list[dg.DagsterRun], job: str) -> tuple[str, int]:
    """(none | running | failed | success, runs so far) of ``job``'s runs for one day."""
    mine = [r for r in runs if r.job_name == job]
    if not mine:
        return "none", 0
    if any(r.status == dg.DagsterRunStatus.SUCCESS for r in mine):
        return "success", len(mine)
    if any(not r.is_finished for r in mine):
        return "running", len(mine)
    return "failed", len(mine)


def _request(job: str, day: str, attempt: int) -> dg.RunRequest:
    """``job``'s run for ``day``: new_day runs the day's year narrowed to the day, trading_day the day."""
    partition = {"partition_key": day}
    if job == new_day_job.name:
        partition = history_run(day, day)
        ops = partition["run_config"]["ops"]  # one narrowing shared by both ops: extend a copy for dbt's
        ops["mem_dbt_history"] = {"config": {**ops["mem_dbt_history"]["config"], "unit_tests": False}}
    return dg.RunRequest(
        job_name=job,
        run_key=f"{job}:{day}" + (f":retry-{attempt}" if attempt else ""),
        tags={DAY_TAG: day},
        **partition,
    )


def _executed(instance: dg.DagsterInstance, day: str) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=executed_orders.key, asset_partitions=[day]), limit=1
    ).records
    return bool(records)


@dg.sensor(
    jobs=[new_day_job, trading_day_job],
    minimum_interval_seconds=POLL_SECONDS,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="A new market day: ingest it and rebuild its features (new_day), then its fills, limits and "
    "decision (trading_day); new_decisions executes it. One day at a time.",
)
def new_market_day(
    context: dg.SensorEvaluationContext, lake: LakeResource, market: MarketDataResource
) -> dg.SensorResult | dg.SkipReason:
    day = context.cursor
    if day and _executed(context.instance, day):
        day = None  # done: look for the next one
    if not day:
        last = lake_io.last_date(lake.paths().bars(market.source))
        if last is None:
            return dg.SkipReason("the lake is empty: backfill the history first (job ingest, then features)")
        day = next_day(last)
        if day is None:
            return dg.SkipReason(f"no closed market day after {last} in the {market.source!r} calendar")
    runs = context.instance.get_runs(filters=dg.RunsFilter(tags={DAY_TAG: day}))
    for job in (new_day_job.name, trading_day_job.name):
        state, n = _state(runs, job)
        if state == "success":
            continue
        if state == "running":
            return dg.SensorResult(skip_reason=f"{job} for {day} is running", cursor=day)
        if state == "failed" and n > MAX_RETRIES:
            context.log.error(f"{job} for {day} failed {n} times; the loop waits: fix the cause and re-run it")
            return dg.SensorResult(skip_reason=f"{job} for {day} failed {n} times", cursor=day)
        return dg.SensorResult(run_requests=[_request(job, day, n)], cursor=day)
    return dg.SensorResult(skip_reason=f"{day} decided; waiting for new_decisions to execute it", cursor=day)
