"""Decision versions: a content hash of everything a decision depends on.

``decision_version = sha256(canonical JSON of the manifest)[:16]``, the manifest being

* ``decision_date`` — the partition;
* ``data_versions`` — the upstream Dagster data versions the caller passes (features, returns, ...);
* ``model_hashes`` — the artifact hashes of the models used (signal, vol, regime, slippage: the cost
  model is a callable and cannot be hashed here, so its artifact hash must be among these);
* ``params`` — the risk and decision configs and the lot sizes;
* ``code_version`` — a hash of the source of ``mem_pipeline/risk`` and ``mem_pipeline/decisions``;
* ``inputs`` — a digest of the content of every frame ``decide`` was given. The caller's data versions
  name the upstream assets, but positions and the equity curve come from the ledger, and a caller
  could pass frames that differ from what it named: the digest makes "same inputs => same version"
  hold for what was actually read, so a new ledger state can never reuse an old version.

Canonical JSON: sorted keys, no whitespace, floats as ``repr`` (exact round trip). Frame digests sort
rows first, so row order does not change a version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

VERSION_LENGTH = 16
CODE_PACKAGES = ("risk", "decisions")


def canonical_json(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def version_of(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(manifest).encode()).hexdigest()[:VERSION_LENGTH]


def frame_digest(frame: pl.DataFrame | None) -> str:
    """sha256 of a frame's column names, types and values, independent of row and column order."""
    digest = hashlib.sha256()
    if frame is None:
        return "none"
    columns = sorted(frame.columns)
    frame = frame.select(columns)
    if frame.height and columns:
        frame = frame.sort(columns, nulls_last=True)
    for name in columns:
        series = frame[name]
        digest.update(f"{name}\0{series.dtype}\0".encode())
        digest.update(series.is_null().to_numpy().tobytes())
        if series.dtype.is_numeric():
            digest.update(np.ascontiguousarray(series.cast(pl.Float64).fill_null(0.0).to_numpy()).tobytes())
        else:
            digest.update("\x1f".join(series.cast(pl.String).fill_null("").to_list()).encode())
    return digest.hexdigest()[:VERSION_LENGTH]


@cache
def code_version(root: Path | None = None) -> str:
    """sha256 over the relative path and bytes of every ``.py`` file of the risk and decisions packages."""
    base = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((base / package).rglob("*.py")):
            digest.update(path.relative_to(base).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:VERSION_LENGTH]
