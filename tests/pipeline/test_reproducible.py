"""Two from-scratch runs of the DVC stages' commands give byte-identical outputs.

A small synthetic market (12 symbols, 2016-2018) goes through what ``dvc repro`` runs for the ingest, features,
models and decisions stages (``python -m assets.run ...``), twice, in two data folders and two Dagster
instances. Every file of the outputs dvc.yaml declares for them (the lake, the quarantine, the models and
forecasts, the day's risk inputs and limits, the decision) has the same bytes in both: the two folders differ,
so an absolute path stored in a file would show. (The execution ledger is state, not an output: SQLite keeps
a deleted lock row's owner and expiry in its free pages.) The DuckDB warehouse is the exception the test checks
differently: DuckDB writes random bytes into its file header (two files built by the same single-threaded
statements differ in 246 bytes), so its tables are compared row by row instead.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

from mem_pipeline.core.params import load_params
from mem_pipeline.core.paths import PROJECT_ROOT

STAGES = (["ingest"], ["features", "labels"], ["models"], ["decisions", "--last"])
DVC_STAGES = ("ingest", "features", "models", "decisions")
WAREHOUSE = Path("warehouse") / "mem.duckdb"


def _repro(root: Path) -> Path:
    params = load_params()
    params["source"] = "synthetic"
    params["sources"]["synthetic"] |= {"n_symbols": 12, "start": "2016-01-04"}
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (root / "home").mkdir()
    (root / "home" / "dagster.yaml").write_text((PROJECT_ROOT / "config" / "dagster.yaml").read_text())
    env = {**os.environ, "MEM_PARAMS": str(root / "params.yaml"), "MEM_SOURCE": "synthetic",
           "MEM_DATA_DIR": str(root / "data"), "DAGSTER_HOME": str(root / "home")}  # fmt: skip
    for args in STAGES:
        out = subprocess.run([sys.executable, "-m", "assets.run", *args], env=env, cwd=PROJECT_ROOT,
                             capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 0, f"{args}: {out.stderr[-3000:]}"
    return root / "data"


def _outs() -> list[Path]:
    """The outputs dvc.yaml declares for these stages, relative to the data folder (``data/...``)."""
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for name in DVC_STAGES for o in stages[name]["outs"]]
    return [Path(o).relative_to("data") for o in outs]


def _digests(data: Path) -> dict[str, str]:
    files = [p for out in _outs() if out != WAREHOUSE for p in sorted((data / out).rglob("*")) if p.is_file()]
    return {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _tables(data: Path) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(data / WAREHOUSE), read_only=True) as con:
        names = [r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()]
        return {n: con.sql(f'select * from "{n}" order by all').pl() for n in sorted(names)}


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("repro")
    return _repro(tmp / "a"), _repro(tmp / "b")


def test_every_output_file_has_the_same_bytes(twice: tuple[Path, Path]) -> None:
    a, b = (_digests(d) for d in twice)
    assert len(a) > 100 and any(k.startswith("decisions/") for k in a) and any(k.startswith("models/") for k in a)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_the_warehouse_holds_the_same_rows(twice: tuple[Path, Path]) -> None:
    a, b = (_tables(d) for d in twice)
    assert {"fct_features_daily", "fct_labels_daily", "int_bars__returns"} <= a.keys()
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name], null_equal=True), name
