"""``new_decisions``: requests ``execute_orders`` once per new decision version, and again after a failed run.

The decision store appends one line per new version to ``data/decisions/index.jsonl``; the sensor's cursor is
the number of lines it has read. Each new version becomes a run request with ``run_key`` = the version (Dagster
drops a request whose run key already ran, so a repeated tick requests nothing), partition = its date, and the
version in run config. When a tick sees several new versions of one date, only the last is executed: an older
version of the same day is superseded before it was sent. Dates before the latest date already requested are
not executed (a backfill of past decisions must not trade now), nor are dates outside the partition calendar;
both are logged.

Retries: a requested version stays pending in the cursor until one of its runs succeeds. When every run of it
has ended and none succeeded (the run failed, or its process died and the run was marked failed), the next tick
requests it again under a new run key (``<version>:retry-<n>``), at most ``MAX_RETRIES`` times. That is safe
because ``execute`` reconciles with the broker before it sends: what the failed run sent is found, not resent.
Only versions of the newest requested date are retried: once a later day is decided, its decision was sized
from positions without the failed day's orders, so sending them late would trade twice.

Default: stopped; start it in the UI (Automation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg

from assets.defs.execution.assets import executed_orders
from assets.partitions import DAILY
from assets.resources import LakeResource
from mem_pipeline.decisions.store import INDEX

execute_orders_job = dg.define_asset_job("execute_orders", selection=dg.AssetSelection.assets(executed_orders))

VERSION_TAG = "mem/decision_version"
MAX_RETRIES = 3
_UNFINISHED = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
    dg.DagsterRunStatus.MANAGED,
}


@dataclass
class Pending:
    """A requested version not yet executed successfully: its date and the retries already requested."""

    date: str
    retries: int = 0


def _read_index(lake: LakeResource) -> list[dict]:
    path = lake.paths().decisions / INDEX
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _request(version: str, date: str, run_key: str, **tags: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        partition_key=date,
        run_config={"ops": {"executed_orders": {"config": {"decision_version": version}}}},
        tags={VERSION_TAG: version, **tags},
    )


def _retries(
    context: dg.SensorEvaluationContext, pending: dict[str, Pending]
) -> tuple[list[dg.RunRequest], dict[str, Pending]]:
    """Re-request each pending version whose runs all ended without a success; drop the succeeded ones and
    those out of retries."""
    requests: list[dg.RunRequest] = []
    still: dict[str, Pending] = {}
    for version, p in pending.items():
        runs = context.instance.get_runs(filters=dg.RunsFilter(tags={VERSION_TAG: version}))
        if any(r.status == dg.DagsterRunStatus.SUCCESS for r in runs):
            continue
        if not runs or any(r.status in _UNFINISHED for r in runs):
            still[version] = p  # requested but not launched yet, or still running
            continue
        if p.retries >= MAX_RETRIES:
            context.log.error(
                f"decision {version} for {p.date}: {len(runs)} runs failed; not retried again. "
                "Fix the cause, then re-execute it from the Launchpad (execute_orders, config decision_version)."
            )
            continue
        p = Pending(p.date, p.retries + 1)
        context.log.warning(f"decision {version} for {p.date}: its last run failed; retry {p.retries}")
        requests.append(_request(version, p.date, f"{version}:retry-{p.retries}", **{"mem/retry_of": runs[0].run_id}))
        still[version] = p
    return requests, still


@dg.sensor(
    job=execute_orders_job,
    minimum_interval_seconds=1,  # reads one small file: checked at every sensor evaluation (~5 s)
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Executes each new trade-decision version exactly once (run_key = version); retries failed runs.",
)
def new_decisions(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    seen, newest = cursor.get("lines", 0), cursor.get("last_date", "")
    pending = {v: Pending(**p) for v, p in cursor.get("pending", {}).items()}
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
    newest = max([newest, *latest])
    # a newer date, or a newer version of the same date, supersedes a pending version
    live = {v: p for v, p in pending.items() if p.date == newest and p.date not in latest}
    retries, pending = _retries(context, live)
    fresh = [_request(version, date, version) for date, version in sorted(latest.items())]
    pending.update({version: Pending(date) for date, version in latest.items() if date == newest})
    return dg.SensorResult(
        run_requests=[*retries, *fresh],
        cursor=json.dumps(
            {"lines": len(entries), "last_date": newest, "pending": {v: vars(p) for v, p in pending.items()}}
        ),
    )
