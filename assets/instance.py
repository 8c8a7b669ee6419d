"""The project's Dagster instance: ``DAGSTER_HOME`` or ``.dagster_home/`` in the repo (SQLite storage)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mem_pipeline.core.paths import PROJECT_ROOT


def ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
    return home
