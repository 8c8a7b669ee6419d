"""DVC's pipeline mirrors the asset groups and runs MEM's jobs; dvc lives in its own tool environment."""

from __future__ import annotations

import subprocess

import yaml

from mem_pipeline.core.paths import PROJECT_ROOT

DVC = PROJECT_ROOT / ".tools" / "bin" / "dvc"


def test_dvc_is_installed_apart_from_dagster() -> None:
    # make installs dvc as a uv tool: its hydra pins antlr4 4.9, which breaks dagster's 4.13 in one environment.
    assert DVC.exists(), "run `make install`: dvc is installed under .tools/"
    assert not (PROJECT_ROOT / ".venv" / "bin" / "dvc").exists()


def test_dry_repro_runs_each_stage_through_the_dagster_jobs() -> None:
    out = subprocess.run([str(DVC), "repro", "--dry", "--force"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        assert f"Running stage '{name}'" in out.stdout
        assert stage["cmd"] in out.stdout and "-m assets.run" in stage["cmd"]
    assert stages["features"]["deps"][0] == "data/raw"  # features depend on the ingest stage's output


def test_the_backtest_stage_reads_its_params_and_publishes_the_reports_metrics() -> None:
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    backtest = stages["backtest"]
    assert backtest["deps"][0] == stages["features"]["outs"][0]  # the warehouse the features stage writes
    assert {"backtest", "risk", "decisions", "models", "execution.paper"} == set(backtest["params"])
    [metrics] = backtest["metrics"]
    assert list(metrics) == ["data/reports/backtest/metrics.json"]
