"""The daily loop's sensor on a hand-made lake and stand-in runs: one day at a time, new_day then trading_day,
the next day only after the day's execution, bounded retries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from assets.defs.loop.sensors import DAY_TAG, MAX_RETRIES, new_market_day
from assets.partitions import DAILY
from assets.resources import LakeResource, MarketDataResource


def _store_day(data: Path, day: str) -> None:
    """One bar in the lake for ``day`` (the sensor reads only which days are stored)."""
    folder = data / "raw" / "sample" / "bars" / f"date={day}"
    folder.mkdir(parents=True)
    pl.DataFrame({"symbol": ["AAA"], "date": [dt.date.fromisoformat(day)], "close": [1.0]}).write_parquet(
        folder / "part.parquet"
    )


def _tick(data: Path, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    resources = {"lake": LakeResource(data_dir=str(data)), "market": MarketDataResource(source="sample")}
    return new_market_day(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor))


def _run(instance: dg.DagsterInstance, request: dg.RunRequest, fail: bool = False) -> None:
    """A stand-in run of the requested job (same name and tags) that fails or succeeds."""

    @dg.op(name="stand_in")
    def stand_in() -> None:
        if fail:
            raise RuntimeError("disk full")

    @dg.job(name=request.job_name)
    def job() -> None:
        stand_in()

    job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)


def test_one_day_at_a_time_new_day_then_trading_day_then_the_next_day(tmp_path) -> None:
    days = DAILY.get_partition_keys()
    d0, d1, d2 = days[-3:]
    data, instance = tmp_path / "data", dg.DagsterInstance.ephemeral()
    assert isinstance(_tick(data, instance, None), dg.SkipReason)  # an empty lake: backfill first
    _store_day(data, d0)

    tick = _tick(data, instance, None)
    [ingest] = tick.run_requests
    assert (ingest.job_name, ingest.partition_key, ingest.run_key, ingest.tags) == (
        "new_day",
        d1[:4],
        f"new_day:{d1}",
        {DAY_TAG: d1},
    )
    narrowed = {"start": d1, "end": d1}
    assert ingest.run_config == {
        "ops": {"raw_bars": {"config": narrowed}, "mem_dbt_history": {"config": narrowed | {"unit_tests": False}}}
    }
    assert tick.cursor == d1
    _run(instance, ingest)
    _store_day(data, d1)  # what the run published

    tick = _tick(data, instance, tick.cursor)
    [decide] = tick.run_requests
    assert (decide.job_name, decide.partition_key, decide.run_key) == ("trading_day", d1, f"trading_day:{d1}")
    _run(instance, decide)

    tick = _tick(data, instance, tick.cursor)  # decided, not executed: the loop waits
    assert tick.run_requests == [] and tick.cursor == d1
    instance.report_runless_asset_event(dg.AssetMaterialization("executed_orders", partition=d1))

    tick = _tick(data, instance, tick.cursor)
    [ingest] = tick.run_requests
    assert (ingest.job_name, ingest.run_key, tick.cursor) == ("new_day", f"new_day:{d2}", d2)
    _run(instance, ingest)
    _store_day(data, d2)
    assert [r.run_key for r in _tick(data, instance, d2).run_requests] == [f"trading_day:{d2}"]


def test_a_failed_step_is_retried_then_the_loop_waits(tmp_path) -> None:
    d0, d1 = DAILY.get_partition_keys()[-2:]
    data, instance = tmp_path / "data", dg.DagsterInstance.ephemeral()
    _store_day(data, d0)
    tick = _tick(data, instance, None)
    keys = [tick.run_requests[0].run_key]
    for _ in range(MAX_RETRIES + 1):
        _run(instance, tick.run_requests[0], fail=True)
        tick = _tick(data, instance, tick.cursor)
        if not tick.run_requests:
            break
        keys.append(tick.run_requests[0].run_key)
    assert keys == [f"new_day:{d1}", *(f"new_day:{d1}:retry-{n}" for n in range(1, MAX_RETRIES + 1))]
    assert tick.run_requests == [] and "failed" in tick.skip_reason.skip_message
    assert not instance.get_runs(filters=dg.RunsFilter(tags={DAY_TAG: d1}, job_name="trading_day"))
