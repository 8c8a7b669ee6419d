"""The new_decisions sensor on a hand-written decision index: latest version per date, no past dates, no
dates outside the calendar, and nothing twice."""

from __future__ import annotations

import json

import dagster as dg

from assets.defs.execution.sensors import new_decisions
from assets.partitions import DAILY
from assets.resources import LakeResource
from mem_pipeline.decisions.store import INDEX


def _tick(resources: dict, cursor: str | None = None) -> dg.SensorResult:
    return new_decisions(dg.build_sensor_context(resources=resources, cursor=cursor))


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
    assert json.loads(first.cursor) == {"lines": 4, "last_date": d2}

    # Nothing new: nothing requested. A backfilled older day is not executed; a newer one is.
    assert _tick(resources, first.cursor).run_requests == []
    with index.open("a") as handle:
        handle.write(json.dumps({"date": d1, "version": "a2"}) + "\n")
        handle.write(json.dumps({"date": d3, "version": "c1"}) + "\n")
    second = _tick(resources, first.cursor)
    assert [(r.partition_key, r.run_key) for r in second.run_requests] == [(d3, "c1")]
