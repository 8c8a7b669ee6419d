"""Quarantine: where rejected rows and unreadable files go, with the reason, never to be lost.

``<quarantine>/<source>/rows/<batch_id>/rejected.parquet`` (+ ``report.json``) for rows that broke a
rule; ``<quarantine>/<source>/files/<sha256-prefix>-<name>`` (+ ``.reason.txt``) for inputs that could
not be read at all. Batch ids are content-derived, so re-running the same batch rewrites the same
entry instead of piling up copies.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from mem_pipeline.core.files import atomic_write_parquet, file_sha256


def write_rejected_rows(rejected: pl.DataFrame, directory: Path, report: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(rejected, directory / "rejected.parquet")
    (directory / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return directory


def quarantine_file(path: Path, reason: str, directory: Path) -> Path | None:
    """Copy an unreadable input aside with its reason; the original stays where the user put it."""
    if not path.is_file():
        return None
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{file_sha256(path)[:12]}-{path.name}"
    shutil.copy2(path, target)
    target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
    return target


def read_rejected(source_quarantine: Path) -> pl.DataFrame:
    files = sorted(source_quarantine.glob("rows/*/rejected.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()
