"""Run MEM's jobs against the project's Dagster instance: ``python -m assets.run ingest features``.

This is what ``make demo`` and the DVC stages call, so a ``dvc repro`` run shows up in the Dagster UI
like any scheduled run. Partitioned jobs cover the source's whole calendar as one backfill run
unless ``--start``/``--end`` narrow it.
"""

from __future__ import annotations

import argparse
import sys
import time

import dagster as dg

from assets.definitions import defs
from assets.instance import ensure_dagster_home
from assets.partitions import HISTORY, HISTORY_OPS, history_run, range_tags, year_key

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_job(
    name: str,
    instance: dg.DagsterInstance,
    start: str | None = None,
    end: str | None = None,
    run_config: dict | None = None,
    tags: dict[str, str] | None = None,
) -> float:
    """Execute job ``name`` in-process; return its wall time. Exits non-zero (with the reason) on failure.

    A partitioned job runs ``start``..``end`` (default: the whole calendar) as one run; one key runs as that
    partition. A history job (yearly partitions) also takes days: ``2010-03-01``..``2010-06-30`` runs the year
    2010 narrowed to those days."""
    job = defs.resolve_job_def(name)
    tags = dict(tags or {})
    run_config = dict(run_config or {})
    partition_key = None
    if job.partitions_def is not None:
        keys = job.partitions_def.get_partition_keys()
        first, last = start or keys[0], end or keys[-1]
        if job.partitions_def == HISTORY and DAY_KEY in (len(first), len(last)):
            first, last, run_config = _history_days(job, first, last, run_config)
        if first == last:
            partition_key = first
        else:
            tags |= range_tags(first, last)
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        tags=tags,
        partition_key=partition_key,
        run_config={**QUIET, **run_config},
        raise_on_error=False,
    )
    elapsed = time.perf_counter() - started
    if not result.success:
        failures = [e.message or "" for e in result.all_events if e.is_failure]
        print(f"job {name!r} failed after {elapsed:.1f}s:\n" + "\n".join(failures), file=sys.stderr)
        raise SystemExit(1)
    return elapsed


DAY_KEY = len("2010-06-30")


def _history_days(job: dg.JobDefinition, start: str, end: str, run_config: dict) -> tuple[str, str, dict]:
    """Year keys and the narrowing config of every history op in ``job`` for the days ``start .. end`` (a year
    key stands for its whole year)."""
    first = start if len(start) == DAY_KEY else f"{start}-01-01"
    last = end if len(end) == DAY_KEY else f"{end}-12-31"
    ops = tuple(node for node in job.graph.node_names() if node in HISTORY_OPS)
    narrowed = history_run(first, last, ops)["run_config"]["ops"]
    given = run_config.get("ops", {})
    merged = {op: {"config": {**narrowed.get(op, {}).get("config", {}), **given.get(op, {}).get("config", {})}}
              for op in {*narrowed, *given}}  # fmt: skip
    return year_key(first), year_key(last), {**run_config, "ops": merged}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("jobs", nargs="+", help="job names, run in order (ingest, features)")
    parser.add_argument("--start", help="first partition key or day (default: the first of the calendar)")
    parser.add_argument("--end", help="last partition key or day (default: the last of the calendar)")
    parser.add_argument("--last", action="store_true", help="only the calendar's last partition")
    args = parser.parse_args(argv)
    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    for name in args.jobs:
        start, end = args.start, args.end
        partitions = defs.resolve_job_def(name).partitions_def
        if args.last and partitions is not None:
            start = end = partitions.get_last_partition_key()
        print(f"{name}: {run_job(name, instance, start, end):.1f}s")


if __name__ == "__main__":
    main()
