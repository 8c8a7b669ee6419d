"""``dvc repro`` end to end in a fresh copy of the project: every stage runs once, a second repro does nothing,
``dvc status`` is clean, outputs round-trip through the default local remote, and
``dvc exp run -S risk.kelly_fraction=...`` re-runs only the stages that read ``risk`` and shows up in
``dvc exp show`` with the backtest's metrics.

The copy is a new git repository holding the project's tracked files as they are in the working tree, with
``params.yaml`` set to a small synthetic market (12 symbols, 2016-01 .. 2017-06, a longer warm-up for so few
symbols) and two tuning trials so that the five stages take about a minute; it shares the project's installed
environments (``.venv``, ``.tools``) and the dbt manifest ``make install`` built. Nothing else is shared: its own
data folder, DVC cache and Dagster instance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mem_pipeline.core.paths import PROJECT_ROOT

STAGES = ("ingest", "features", "models", "decisions", "backtest")
READ_RISK = {"decisions", "backtest"}  # the stages whose `params:` in dvc.yaml list `risk`
KELLY = 0.35


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def _copy_project(root: Path, env: dict[str, str]) -> None:
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True)
    for name in tracked.stdout.decode().split("\0"):
        source = PROJECT_ROOT / name
        if name and source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    for tool in (".venv", ".tools"):
        (root / tool).symlink_to(PROJECT_ROOT / tool)
    manifest = Path("dbt_project") / "target" / "manifest.json"
    (root / manifest).parent.mkdir(parents=True)
    shutil.copy2(PROJECT_ROOT / manifest, root / manifest)
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    params["source"] = "synthetic"
    params["sources"]["synthetic"] |= {"n_symbols": 12, "start": "2016-01-04", "end": "2017-06-30"}
    params["backtest"]["tuning"]["n_trials"] = 2
    params["backtest"]["run"]["warmup_days"] = 250  # 12 symbols: the signal model needs a longer history
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "MEM"]):
        _run(["git", *command], root, env)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("dvc-project")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEM_", "DAGSTER_"))}
    env |= {"GIT_AUTHOR_NAME": "MEM", "GIT_AUTHOR_EMAIL": "mem@localhost", "GIT_COMMITTER_NAME": "MEM",
            "GIT_COMMITTER_EMAIL": "mem@localhost"}  # fmt: skip
    _copy_project(root, env)
    return root, env


def _dvc(project: tuple[Path, dict[str, str]], *args: str) -> str:
    root, env = project
    return _run([str(root / ".tools" / "bin" / "dvc"), *args], root, env)


def test_repro_builds_every_stage_once_and_then_nothing(project: tuple[Path, dict[str, str]]) -> None:
    first = _dvc(project, "repro")
    assert all(f"Running stage '{stage}'" in first for stage in STAGES), first
    assert (project[0] / "data" / "reports" / "backtest" / "metrics.json").exists()
    second = _dvc(project, "repro")
    assert "Running stage" not in second, second
    assert all(f"Stage '{stage}' didn't change, skipping" in second for stage in STAGES), second
    assert "Data and pipelines are up to date." in _dvc(project, "status")


def test_push_and_pull_through_the_default_local_remote(project: tuple[Path, dict[str, str]]) -> None:
    """The outputs go to the local remote (.dvc_remote/, offline) and come back from it after the data folder
    and DVC's cache are gone."""
    root = project[0]
    decisions = root / "data" / "decisions"
    before = {p.relative_to(root): p.read_bytes() for p in sorted(decisions.rglob("*")) if p.is_file()}
    assert before
    _dvc(project, "push")
    assert any((root / ".dvc_remote").rglob("*"))
    shutil.rmtree(root / "data" / "decisions")
    shutil.rmtree(root / "data" / "raw")
    shutil.rmtree(root / ".dvc" / "cache")
    assert "deleted" in _dvc(project, "status")
    _dvc(project, "pull")
    assert {p.relative_to(root): p.read_bytes() for p in sorted(decisions.rglob("*")) if p.is_file()} == before
    assert "Data and pipelines are up to date." in _dvc(project, "status")


def test_an_experiment_re_runs_only_the_stages_reading_its_parameter(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    _run(["git", "add", "-A"], root, env)  # dvc.lock, and the metrics and plot git keeps (.gitignore)
    assert "data/reports/backtest/metrics.json" in _run(["git", "diff", "--cached", "--name-only"], root, env)
    _run(["git", "commit", "-qm", "the baseline's results"], root, env)
    out = _dvc(project, "exp", "run", "-S", f"risk.kelly_fraction={KELLY}")
    ran = {stage for stage in STAGES if f"Running stage '{stage}'" in out}
    assert ran == READ_RISK, out
    shown = json.loads(_dvc(project, "exp", "show", "--json"))
    baseline = next(c for c in shown if c["rev"] != "workspace")
    experiments = baseline.get("experiments") or []
    assert len(experiments) == 1, shown
    for data, kelly in ((experiments[0]["revs"][0]["data"], KELLY), (baseline["data"], None)):
        fraction = data["params"]["params.yaml"]["data"]["risk"]["kelly_fraction"]
        assert fraction == KELLY if kelly else fraction != KELLY
        metrics = data["metrics"]["data/reports/backtest/metrics.json"]
        assert {"mem", "static", "buy_and_hold"} <= set(metrics.get("data", {})), metrics
        assert "sharpe" in metrics["data"]["mem"]
