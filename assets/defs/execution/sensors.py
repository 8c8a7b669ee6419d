"""``new_decisions``: requests ``execute_orders`` once per new decision version.

The decision store appends one line per new version to ``data/decisions/index.jsonl``; the sensor's cursor is
the number of lines it has read. Each new version becomes a run request with ``run_key`` = the version (Dagster
drops a request whose run key already ran, so a repeated tick requests nothing), partition = its date, and the
version in run config. When a tick sees several new versions of one date, only the last is executed: an older
version of the same day is superseded before it was sent. Dates before the latest date already requested are
not executed (a backfill of past decisions must not trade now), nor are dates outside the partition calendar;
both are logged. Default: stopped; start it in the UI (Automation).
"""

import json

import dagster as dg

from assets.defs.execution.assets import executed_orders
from assets.partitions import DAILY
from assets.resources import LakeResource
from mem_pipeline.decisions.store import INDEX

execute_orders_job = dg.define_asset_job("execute_orders", selection=dg.AssetSelection.assets(executed_orders))


def _read_index(lake: LakeResource) -> list[dict]:
    path = lake.paths().decisions / INDEX
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dg.sensor(
    job=execute_orders_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Executes each new trade-decision version exactly once (run_key = version).",
)
def new_decisions(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    seen, newest = cursor.get("lines", 0), cursor.get("last_date", "")
    entries = _read_index(lake)
    valid = set(DAILY.get_partition_keys())
    latest: dict[str, str] = {}
    for entry in entries[seen:]:
        date = entry["date"]
        if date not in valid:
            context.log.warning(f"decision {entry['version']}: {date} is not a partition of the calendar; skipped")
        elif date < newest:
            context.log.info(f"decision {entry['version']} for {date}: older than {newest}, not executed")
        else:
            latest[date] = entry["version"]  # later lines supersede earlier ones of the same date
    requests = [
        dg.RunRequest(
            run_key=version,
            partition_key=date,
            run_config={"ops": {"executed_orders": {"config": {"decision_version": version}}}},
            tags={"mem/decision_version": version},
        )
        for date, version in sorted(latest.items())
    ]
    newest = max([newest, *latest])
    return dg.SensorResult(run_requests=requests, cursor=json.dumps({"lines": len(entries), "last_date": newest}))
