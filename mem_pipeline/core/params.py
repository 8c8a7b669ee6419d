"""``params.yaml`` is the single source of default parameters (DVC tracks it; Dagster configs read it)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mem_pipeline.core.paths import PARAMS_FILE


@cache
def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """The parsed parameters file (cached per path; returns a fresh top-level copy)."""
    return dict(_load(Path(path).resolve()))


def section(name: str, path: Path = PARAMS_FILE) -> dict[str, Any]:
    """One top-level section, e.g. ``section("ingest")``; missing sections are empty."""
    return dict(load_params(path).get(name) or {})
