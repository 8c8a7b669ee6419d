"""The backtest's results on the bundled real data and the synthetic market, through the Dagster jobs.

    python -m bench.backtest_results stocks      # the 524-stock year (2009-08 .. 2010-08)
    python -m bench.backtest_results stocks_10m  # the same, a 10,000,000 account
    python -m bench.backtest_results indices     # ^GSPC and ^IXIC, 1999 .. 2018
    python -m bench.backtest_results stocks backtest_report   # only the report, from the stored variants
    python -m bench.backtest_results synthetic   # the default synthetic market (50 symbols, 2012 .. 2018)
    python -m bench.backtest_results synthetic_10m   # the same, a 10,000,000 account

Each dataset gets its own data folder (``data/results/<dataset>``: lake, warehouse, backtests, report, a Dagster
instance) and its own params file there (params.yaml with the dataset's ``backtest.run`` and ``backtest.tuning``);
the jobs are the ones a user runs: ``ingest features labels`` (once per source), then
``tune_backtest run_backtest report_backtest``.
The report lands in ``data/results/<dataset>/reports/backtest/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import yaml

from mem_pipeline.core.paths import PARAMS_FILE, PROJECT_ROOT

INDICES = ["^GSPC", "^IXIC"]
DATASETS: dict[str, dict] = {
    # The stock year has 245 trading days: 140 of warm-up leave ~105 to test; the tuning validates on the 40 before
    # them (risk needs 60 days of returns before its first decision).
    "stocks": {"source": "sample", "run": {"exclude": INDICES, "warmup_days": 140}, "tuning": {"validation_days": 40}},
    "stocks_10m": {
        "source": "sample",
        "run": {"exclude": INDICES, "warmup_days": 140},
        "tuning": {"validation_days": 40},
        "risk": {"account_equity": 1.0e7},
    },
    # Two symbols give 500 training rows a year: three years of warm-up before the first decision (and the
    # tuning's 126-day validation window) leave the signal's walk-forward folds enough rows. A 10,000 account
    # cannot hold one whole share of an index quoted at 1,000 to 8,000 under its 750 per-symbol cap: 10,000,000.
    "indices": {
        "source": "sample",
        "run": {"symbols": INDICES, "warmup_days": 750},
        "tuning": {"validation_days": 126},
        "risk": {"account_equity": 1.0e7},
    },
    # (their reported figures were taken with a 63-day validation window, the default then)
    "synthetic": {"source": "synthetic", "run": {"warmup_days": 250}, "tuning": {"validation_days": 63}},
    # The same market traded by a 10,000,000 account (the caps scale with equity): orders reach a share of ADV
    # where the cost-aware schedule slices them.
    "synthetic_10m": {
        "source": "synthetic",
        "run": {"warmup_days": 250},
        "tuning": {"validation_days": 63},
        "risk": {"account_equity": 1.0e7},
    },
}
BUILD = ["ingest", "features", "labels"]
BACKTEST = ["tune_backtest", "run_backtest", "report_backtest"]


def _jobs(jobs: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "assets.run", *jobs], check=True, env=env, cwd=PROJECT_ROOT)


def main(name: str, jobs: list[str] | None = None) -> None:
    dataset = DATASETS[name]
    root = PROJECT_ROOT / "data" / "results"
    data_dir = root / name
    params = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
    params["backtest"]["run"] |= dataset["run"]
    params["backtest"]["tuning"] |= dataset.get("tuning", {})
    params["risk"] |= dataset.get("risk", {})
    data_dir.mkdir(parents=True, exist_ok=True)
    params_file = data_dir / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    env = os.environ | {
        "MEM_SOURCE": dataset["source"],
        "MEM_DATA_DIR": str(data_dir),
        "MEM_PARAMS": str(params_file),
        "DAGSTER_HOME": str(data_dir / "dagster_home"),  # its own instance: datasets can run side by side
    }
    started = time.perf_counter()
    if not (data_dir / "warehouse" / "mem.duckdb").exists():
        twin = next((root / n for n, d in DATASETS.items() if n != name and d["source"] == dataset["source"]
                     and (root / n / "warehouse" / "mem.duckdb").exists()), None)  # fmt: skip
        if twin is not None:  # the same source's lake and warehouse, built for another dataset
            for folder in ("raw", "warehouse"):
                shutil.copytree(twin / folder, data_dir / folder, dirs_exist_ok=True)
        else:
            _jobs(BUILD, env)
    built = time.perf_counter()
    _jobs(jobs or BACKTEST, env)
    done = time.perf_counter()
    report = data_dir / "reports" / "backtest" / "report.md"
    print(f"{name}: build {built - started:.0f}s, tuning + backtest + report {done - built:.0f}s -> {report}")
    print(report.read_text(encoding="utf-8"))


if __name__ == "__main__":
    # A second argument runs only those jobs, e.g. ``backtest_report`` to redraw a report from stored variants.
    main(sys.argv[1] if len(sys.argv) > 1 else "synthetic", sys.argv[2:] or None)
