"""The daily loop under the Dagster daemon: a new market day → orders at the paper broker.

Usage: python -m bench.bench_daily_loop [--days 5] [--symbols 50]

The synthetic market (params.yaml's, ``--symbols`` wide) is backfilled up to ``--history-end`` with the jobs a user
runs (ingest, features, labels, models as of that day), in a throw-away data folder and Dagster instance. Then
``dagster-daemon run`` starts with the ``new_market_day`` and ``new_decisions`` sensors on, and the market steps
one day at a time through the next ``--days`` days: ``new_day`` (ingest + dbt for the day), ``trading_day``
(fills, limits, decision), ``execute_orders`` (requested by new_decisions). Reported per day, from the instance's
run records: the chain from the sensor's ``new_day`` run creation to the execution run's end, and the step period
(one execution's end to the next's, which includes the loop's poll for the next day). Wall and CPU seconds of the
whole loop, and the machine's load, are printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.harness import machine
from mem_pipeline.core.params import load_params
from mem_pipeline.core.paths import PROJECT_ROOT

BIN = Path(sys.executable).parent


def _env(tmp: Path, symbols: int) -> dict[str, str]:
    params = load_params()
    params["source"] = "synthetic"
    params["sources"]["synthetic"]["n_symbols"] = symbols
    (tmp / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
    return {**os.environ, "MEM_PARAMS": str(tmp / "params.yaml"), "MEM_SOURCE": "synthetic",
            "MEM_DATA_DIR": str(tmp / "data"), "DAGSTER_HOME": str(home)}  # fmt: skip


def _python(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, *args], env=env, cwd=PROJECT_ROOT, check=True, capture_output=True)


def _backfill(env: dict[str, str], end: str) -> None:
    _python(env, "-m", "assets.run", "ingest", "features", "--end", end)
    _python(env, "-m", "assets.run", "labels")
    models = {"ops": {n: {"config": {"as_of": end}} for n in ("regime_model", "vol_forecasts", "signal_model")}}
    code = (
        "import dagster as dg; from assets.run import run_job; "
        f"run_job('models', dg.DagsterInstance.get(), run_config={models!r})"
    )
    _python(env, "-c", code)


REPORT = """
import json, sys, dagster as dg
instance = dg.DagsterInstance.get()
days = json.loads(sys.argv[1])
out = {}
for day in days:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"mem/trading_day": day}))
    new = [r for r in runs if r.job_name == "new_day"]
    recs = instance.get_run_records(filters=dg.RunsFilter(run_ids=[r.run_id for r in runs]))
    times = {r.dagster_run.job_name: (r.create_timestamp.timestamp(), r.start_time, r.end_time) for r in recs}
    execs = [r for r in instance.get_run_records(filters=dg.RunsFilter(job_name="execute_orders",
             statuses=[dg.DagsterRunStatus.SUCCESS])) if r.dagster_run.tags.get("dagster/partition") == day]
    if new and execs:
        times["execute_orders"] = (execs[0].create_timestamp.timestamp(), execs[0].start_time, execs[0].end_time)
    out[day] = times
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--history-end", default="2018-11-30")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--keep", action="store_true", help="keep the data folder and instance (printed)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mem-loop-"))
    env = _env(tmp, args.symbols)
    began = time.perf_counter()
    _backfill(env, args.history_end)
    print(f"history backfilled to {args.history_end} in {time.perf_counter() - began:.1f}s")
    print(f"machine before the loop: {machine()}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
                              env=env, cwd=PROJECT_ROOT, stdout=(tmp / "daemon.log").open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    loop_began = time.perf_counter()
    try:
        for sensor in ("new_decisions", "new_market_day"):
            start = [str(BIN / "dagster"), "sensor", "start", sensor, "-w", str(PROJECT_ROOT / "workspace.yaml")]
            subprocess.run(start, env=env, cwd=PROJECT_ROOT, check=True, capture_output=True)
        days = _wait_for_executions(env, tmp, args.days, args.timeout)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    loop_wall = time.perf_counter() - loop_began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"machine after the loop: {machine()}")
    _report(env, days, loop_wall, cpu)
    if args.keep:
        print(f"kept: {tmp} (DAGSTER_HOME={tmp / 'dagster_home'}, MEM_DATA_DIR={tmp / 'data'})")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def _executed_days(env: dict[str, str]) -> list[str]:
    code = (
        "import dagster as dg; i = dg.DagsterInstance.get(); "
        "print(' '.join(sorted(i.get_materialized_partitions(dg.AssetKey('executed_orders')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, check=True, capture_output=True,
                         text=True).stdout  # fmt: skip
    return out.split()


def _wait_for_executions(env: dict[str, str], tmp: Path, n: int, timeout: float) -> list[str]:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        days = _executed_days(env)
        if len(days) >= n:
            return days[:n]
        time.sleep(5)
    raise SystemExit(f"only {_executed_days(env)} executed after {timeout}s; see {tmp / 'daemon.log'}")


def _report(env: dict[str, str], days: list[str], loop_wall: float, cpu: float) -> None:
    import json

    out = subprocess.run([sys.executable, "-c", REPORT, json.dumps(days)], env=env, cwd=PROJECT_ROOT, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    times = json.loads(out.strip().splitlines()[-1])
    chains, ends = [], []
    jobs = ("new_day", "trading_day", "execute_orders")
    print(
        "| day | " + " | ".join(f"{j}: wait, start, run s" for j in jobs) + " | new_day created → orders at broker s |"
    )
    print("|---|---|---|---|---|")
    for day in days:
        t = times[day]
        cells, previous_end = [], t["new_day"][0]
        for job in jobs:
            created, started, ended = t[job]
            # wait: the sensor hop since the previous run ended; start: launch and process start-up
            cells.append(f"{created - previous_end:.1f}, {started - created:.1f}, {ended - started:.1f}")
            previous_end = ended
        chain = t["execute_orders"][2] - t["new_day"][0]
        chains.append(chain)
        ends.append(t["execute_orders"][2])
        print(f"| {day} | " + " | ".join(cells) + f" | {chain:.1f} |")
    periods = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    print(f"chain (new_day created → execution ended): median {statistics.median(chains):.1f}s, "
          f"min {min(chains):.1f}, max {max(chains):.1f}")  # fmt: skip
    if periods:
        print(f"step period (execution end → next execution end, poll included): median "
              f"{statistics.median(periods):.1f}s, min {min(periods):.1f}, max {max(periods):.1f}")  # fmt: skip
    print(f"loop: {loop_wall:.1f}s wall for {len(days)} days, {cpu:.1f}s CPU (daemon, code server and runs)")


if __name__ == "__main__":
    main()
