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


#: Keys of a ``models.<name>`` section that configure the model asset's checks or inputs, not the fit.
MODEL_CHECK_KEYS: dict[str, tuple[str, ...]] = {
    "regime": ("min_vol_ratio",),
    "volatility": ("min_fitted_share",),
    "slippage": ("n_fills", "seed", "max_mae_over_floor"),
    "signal": ("max_ece", "use_memory"),
}


def model_params(name: str, path: Path = PARAMS_FILE) -> tuple[dict[str, Any], dict[str, Any]]:
    """``models.<name>`` split into (the fit's settings, the asset's check keys: ``MODEL_CHECK_KEYS``)."""
    params = dict((load_params(path).get("models") or {}).get(name) or {})
    keys = MODEL_CHECK_KEYS.get(name, ())
    return {k: v for k, v in params.items() if k not in keys}, {k: params[k] for k in keys if k in params}
