"""Run the dbt project against a data folder without Dagster (benchmarks and feature-level tests).

Each call gets its own target and log folders, so calls can run in parallel (pytest -n) safely.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import polars as pl

from mem_pipeline.core.errors import MemError
from mem_pipeline.core.paths import DBT_PROJECT_DIR

DBT = str(Path(sys.executable).parent / "dbt")


class DbtRunError(MemError, AssertionError):
    """A dbt command failed (its output is in the message)."""


def dbt(data_dir: Path, *args: str, dbt_vars: dict[str, object] | None = None) -> subprocess.CompletedProcess[str]:
    """``dbt <args>`` with ``MEM_DATA_DIR=data_dir``; raises with dbt's output if it fails."""
    run_dir = data_dir / "dbt-runs" / uuid.uuid4().hex[:8]
    (data_dir / "warehouse").mkdir(parents=True, exist_ok=True)
    command = [
        DBT,
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(run_dir / "target"),
        "--log-path",
        str(run_dir / "logs"),
    ]
    if dbt_vars:
        command += ["--vars", json.dumps(dbt_vars)]
    env = {**os.environ, "MEM_DATA_DIR": str(data_dir), "DO_NOT_TRACK": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DbtRunError(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
    return result


def read_table(data_dir: Path, table: str) -> pl.DataFrame:
    """A warehouse table as polars, sorted by its grain (``table``: a model name, quoted as an identifier)."""
    identifier = '"' + table.replace('"', '""') + '"'
    with duckdb.connect(str(data_dir / "warehouse" / "mem.duckdb"), read_only=True) as con:
        frame = con.sql(f"select * from {identifier}").pl()
    return frame.sort("symbol", "trade_date")
