"""The warm run launcher, through the instance as the daemon and the UI use it, on a tiny code location.

The code location's module appends its process id to ``imports.txt`` each time it is imported; its job writes
the run's process id and the module's ``VERSION`` to ``runs.txt``. Run in a driver process that launches runs one
after another (as the daemon does), with an instance configured for ``WarmRunLauncher``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg

MODULE = """
import os, time
import dagster as dg
from pathlib import Path
HERE = Path(__file__).parent
VERSION = {version}
SETTING = (HERE / "setting.txt").read_text().strip() if (HERE / "setting.txt").exists() else "none"
with (HERE / "imports.txt").open("a") as f:
    f.write(f"{{os.getpid()}}\\n")

@dg.op(config_schema={{"sleep": dg.Field(float, default_value=0.0)}})
def record(context):
    with (HERE / "runs.txt").open("a") as f:
        f.write(f"{{os.getpid()}} {{VERSION}} {{SETTING}}\\n")
    time.sleep(context.op_config["sleep"])

@dg.job(executor_def=dg.in_process_executor)
def probe():
    record()

defs = dg.Definitions(jobs=[probe])
"""

DRIVER = """
import json, sys, time
import dagster as dg
from dagster._cli.job import execute_launch_command
from dagster_shared.cli import WorkspaceOpts

here, plan = sys.argv[1], json.loads(sys.argv[2])
instance = dg.DagsterInstance.get()
opts = WorkspaceOpts(module_name=("warm_defs",), working_directory=here, attribute="defs")
for step in plan:
    if step.get("warm"):
        while not instance.run_launcher.ready():
            time.sleep(0.1)
        continue
    if step.get("edit"):
        path = f"{here}/warm_defs.py"
        text = open(path).read().replace("VERSION = 1", "VERSION = 2")
        open(path, "w").write(text)
        continue
    if "setting" in step:
        open(f"{here}/setting.txt", "w").write(step["setting"])
        continue
    run = execute_launch_command(instance=instance, workspace_opts=opts, job_name="probe",
                                 config_json=json.dumps({"ops": {"record": {"config": {"sleep": step["sleep"]}}}}))
    if step.get("terminate"):
        while instance.get_run_by_id(run.run_id).status != dg.DagsterRunStatus.STARTED:
            time.sleep(0.1)
        time.sleep(1.0)
        print("terminated", instance.run_launcher.terminate(run.run_id), flush=True)
    while not instance.get_run_by_id(run.run_id).is_finished:
        time.sleep(0.1)
    print(run.run_id, flush=True)
"""


def _drive(tmp: Path, plan: list[dict], preload: str = "[]") -> list[str]:
    import json

    (tmp / "warm_defs.py").write_text(MODULE.format(version=1), encoding="utf-8")
    home = tmp / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        textwrap.dedent("""
        telemetry: {enabled: false}
        run_coordinator:
          module: dagster.core.run_coordinator
          class: DefaultRunCoordinator
        run_launcher:
          module: assets.launcher
          class: WarmRunLauncher
          config: {watch: [setting.txt], preload: PRELOAD}
        """).replace("PRELOAD", preload),
        encoding="utf-8",
    )
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", DRIVER, str(tmp), json.dumps(plan)], env=env, cwd=tmp,
                         capture_output=True, text=True, timeout=180)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split("\n")


def _instance(tmp: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(tmp / "home"))


def _runs(tmp: Path) -> list[tuple[int, int]]:
    return [tuple(map(int, line.split()[:2])) for line in (tmp / "runs.txt").read_text().splitlines()]


def _settings(tmp: Path) -> list[str]:
    return [line.split()[2] for line in (tmp / "runs.txt").read_text().splitlines()]


def test_runs_are_forked_from_one_warm_process_that_imported_the_code_once(tmp_path: Path) -> None:
    lines = _drive(tmp_path, [{"sleep": 0.0}, {"warm": True}, {"sleep": 0.0}, {"sleep": 0.0}])
    run_ids = [line for line in lines if len(line) == 36]
    instance = _instance(tmp_path)
    runs = [instance.get_run_by_id(r) for r in run_ids]
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 3
    run_pids = [pid for pid, _ in _runs(tmp_path)]
    assert len(set(run_pids)) == 3  # a process per run
    # The first launch starts the warm process in the background and runs as Dagster's default launcher does.
    assert "mem/run_worker" not in runs[0].tags
    for run, pid in zip(runs[1:], run_pids[1:], strict=True):
        assert run.tags["mem/run_worker"].endswith(f":{pid}")
    importers = {int(p) for p in (tmp_path / "imports.txt").read_text().split()}
    # The code server imports the module once per launch (the driver builds a workspace per launch), the warm
    # process once; the first run's fresh process imports it too, the forked ones find it loaded.
    assert run_pids[0] in importers
    assert not importers & set(run_pids[1:])


def test_a_changed_source_file_restarts_the_warm_process(tmp_path: Path) -> None:
    plan = [{"sleep": 0.0}, {"warm": True}, {"sleep": 0.0}, {"edit": True}, {"sleep": 0.0}, {"warm": True},
            {"sleep": 0.0}]  # fmt: skip
    lines = _drive(tmp_path, plan)
    assert [version for _, version in _runs(tmp_path)] == [1, 1, 2, 2]
    last = _instance(tmp_path).get_run_by_id([line for line in lines if len(line) == 36][-1])
    assert "mem/run_worker" in last.tags  # forked from the restarted warm process


def test_a_changed_watched_file_restarts_the_warm_process(tmp_path: Path) -> None:
    """A file the code reads at import (as MEM reads params.yaml) is watched: after it changed, runs see it."""
    plan = [{"setting": "a"}, {"sleep": 0.0}, {"warm": True}, {"sleep": 0.0}, {"setting": "b"}, {"sleep": 0.0},
            {"warm": True}, {"sleep": 0.0}]  # fmt: skip
    _drive(tmp_path, plan)
    assert _settings(tmp_path) == ["a", "a", "b", "b"]


def test_a_warm_process_that_cannot_start_leaves_runs_to_the_default_launcher(tmp_path: Path) -> None:
    (tmp_path / "broken_preload.py").write_text("raise RuntimeError('no warm process today')\n", encoding="utf-8")
    lines = _drive(tmp_path, [{"sleep": 0.0}, {"sleep": 0.0}], preload="[broken_preload]")
    instance = _instance(tmp_path)
    runs = [instance.get_run_by_id(line) for line in lines if len(line) == 36]
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
    assert not any("mem/run_worker" in r.tags for r in runs)


def test_terminate_cancels_the_forked_run(tmp_path: Path) -> None:
    began = time.monotonic()
    lines = _drive(tmp_path, [{"sleep": 0.0}, {"warm": True}, {"sleep": 120.0, "terminate": True}])
    assert "terminated True" in lines
    run_id = [line for line in lines if len(line) == 36][-1]
    assert "mem/run_worker" in _instance(tmp_path).get_run_by_id(run_id).tags
    assert _instance(tmp_path).get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED
    assert time.monotonic() - began < 100  # it did not sleep its 120 s


def test_the_project_instance_uses_the_warm_launcher() -> None:
    import yaml

    from assets.launcher import WarmRunLauncher
    from mem_pipeline.core.paths import PROJECT_ROOT

    config = yaml.safe_load((PROJECT_ROOT / "config" / "dagster.yaml").read_text(encoding="utf-8"))
    with dg.instance_for_test(overrides={"run_launcher": config["run_launcher"]}) as instance:
        assert isinstance(instance.run_launcher, WarmRunLauncher)
