"""The new_decisions sensor on a hand-written decision index: latest version per date, no past dates, no
dates outside the calendar, and nothing twice."""

from __future__ import annotations

import json

import dagster as dg

from assets.defs.execution.sensors import MAX_RETRIES, new_decisions
from assets.partitions import DAILY
from assets.resources import LakeResource
from mem_pipeline.decisions.store import INDEX

INSTANCE = dg.DagsterInstance.ephemeral()


def _tick(resources: dict, cursor: str | None = None, instance: dg.DagsterInstance = INSTANCE) -> dg.SensorResult:
    return new_decisions(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor))


def test_sensor_requests_each_new_day_once_and_never_the_past(tmp_path) -> None:
    keys = DAILY.get_partition_keys()
    d1, d2, d3 = keys[-3], keys[-2], keys[-1]
    index = tmp_path / "data" / "decisions" / INDEX
    index.parent.mkdir(parents=True)
    lines = [(d1, "a1"), (d2, "b1"), (d2, "b2"), ("1900-01-01", "zz")]
    index.write_text("".join(json.dumps({"date": d, "version": v}) + "\n" for d, v in lines))
    resources = {"lake": LakeResource(data_dir=str(tmp_path / "data"))}

    first = _tick(resources)
    assert [(r.partition_key, r.run_key) for r in first.run_requests] == [(d1, "a1"), (d2, "b2")]
    assert first.run_requests[1].run_config == {"ops": {"executed_orders": {"config": {"decision_version": "b2"}}}}
    assert json.loads(first.cursor) == {"lines": 4, "last_date": d2, "pending": {"b2": {"date": d2, "retries": 0}}}

    # Nothing new: nothing requested. A backfilled older day is not executed; a newer one is.
    assert _tick(resources, first.cursor).run_requests == []
    with index.open("a") as handle:
        handle.write(json.dumps({"date": d1, "version": "a2"}) + "\n")
        handle.write(json.dumps({"date": d3, "version": "c1"}) + "\n")
    second = _tick(resources, first.cursor)
    assert [(r.partition_key, r.run_key) for r in second.run_requests] == [(d3, "c1")]


def _index(tmp_path, lines: list[tuple[str, str]]) -> dict:
    index = tmp_path / "data" / "decisions" / INDEX
    index.parent.mkdir(parents=True, exist_ok=True)
    with index.open("a") as handle:
        handle.write("".join(json.dumps({"date": d, "version": v}) + "\n" for d, v in lines))
    return {"lake": LakeResource(data_dir=str(tmp_path / "data"))}


def _run(instance: dg.DagsterInstance, request: dg.RunRequest, fail: bool) -> None:
    """A stand-in execution run carrying the request's tags: it fails or succeeds."""

    @dg.asset(name="stand_in_execution")
    def stand_in() -> None:
        if fail:
            raise RuntimeError("exchange connection reset")

    dg.materialize([stand_in], instance=instance, tags=request.tags, raise_on_error=False)


def test_a_failed_run_is_requested_again_under_a_new_key_until_it_succeeds(tmp_path) -> None:
    d1 = DAILY.get_partition_keys()[-1]
    resources, instance = _index(tmp_path, [(d1, "v1")]), dg.DagsterInstance.ephemeral()
    tick = _tick(resources, instance=instance)
    [first] = tick.run_requests
    # Requested but not started yet: no retry.
    tick = _tick(resources, tick.cursor, instance)
    assert tick.run_requests == []
    _run(instance, first, fail=True)
    tick = _tick(resources, tick.cursor, instance)
    [retry] = tick.run_requests
    assert (retry.run_key, retry.partition_key, retry.run_config) == ("v1:retry-1", d1, first.run_config)
    _run(instance, retry, fail=False)
    tick = _tick(resources, tick.cursor, instance)
    assert tick.run_requests == [] and json.loads(tick.cursor)["pending"] == {}


def test_retries_stop_after_the_limit_and_for_a_superseded_day(tmp_path) -> None:
    d1, d2 = DAILY.get_partition_keys()[-2:]
    resources, instance = _index(tmp_path, [(d1, "v1")]), dg.DagsterInstance.ephemeral()
    tick = _tick(resources, instance=instance)
    keys = []
    request = tick.run_requests[0]
    for _ in range(MAX_RETRIES + 2):
        _run(instance, request, fail=True)
        tick = _tick(resources, tick.cursor, instance)
        keys += [r.run_key for r in tick.run_requests]
        if tick.run_requests:
            request = tick.run_requests[0]
    assert keys == [f"v1:retry-{n}" for n in range(1, MAX_RETRIES + 1)]
    assert json.loads(tick.cursor)["pending"] == {}

    # A failed run of a day is not retried once a later day is decided: that decision assumed it unsent.
    other = tmp_path / "other"
    resources = _index(other, [(d1, "w1")])
    tick = _tick(resources, instance=instance)
    _run(instance, tick.run_requests[0], fail=True)
    resources = _index(other, [(d2, "w2")])
    tick = _tick(resources, tick.cursor, instance)
    assert [r.run_key for r in tick.run_requests] == ["w2"]
    assert set(json.loads(tick.cursor)["pending"]) == {"w2"}
