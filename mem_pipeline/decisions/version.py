"""Decision versions: a content hash of everything a decision depends on.

``decision_version = sha256(canonical JSON of the manifest)[:16]``, the manifest being

* ``decision_date`` — the partition;
* ``data_versions`` — the upstream Dagster data versions the caller passes (features, returns, ...);
* ``model_hashes`` — the artifact hashes of the models used (signal, vol, regime, slippage: the cost
  model is a callable and cannot be hashed here, so its artifact hash must be among these);
* ``params`` — the risk and decision configs and the lot sizes;
* ``code_version`` — a hash of the source of every module the ``decisions`` package imports, transitively
  (models, risk, features, execution's ledger, core);
* ``risk_assessment`` — a digest of the stored limits, drawdown and regime the book was sized against;
* ``inputs`` — a digest of the content of every frame ``decide`` was given. The caller's data versions
  name the upstream assets, but positions and the equity curve come from the ledger, and a caller
  could pass frames that differ from what it named: the digest makes "same inputs => same version"
  hold for what was actually read, so a new ledger state can never reuse an old version.

Canonical JSON: sorted keys, no whitespace, floats as ``repr`` (exact round trip). Frame digests do not
depend on row or column order (a DuckDB scan need not return rows in a fixed order).
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

VERSION_LENGTH = 16


def canonical_json(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def version_of(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(manifest).encode()).hexdigest()[:VERSION_LENGTH]


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser, elementwise (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _column_words(series: pl.Series) -> NDArray[np.uint64]:
    """One uint64 per value: float64 bits, integer/temporal values, or the sha256 of a string; nulls apart."""
    dtype = series.dtype
    if dtype.is_float():
        words = series.cast(pl.Float64).fill_null(0.0).to_numpy().view(np.uint64)
    elif dtype.is_integer() or dtype.is_temporal() or dtype == pl.Boolean:
        words = series.cast(pl.Int64).fill_null(0).to_numpy().view(np.uint64)
    else:
        text = series.cast(pl.String).fill_null("")
        uniques = text.unique().sort()
        keys = np.array(
            [int.from_bytes(hashlib.sha256(u.encode()).digest()[:8], "little") for u in uniques.to_list()],
            dtype=np.uint64,
        )
        words = keys[uniques.search_sorted(text).to_numpy()]
    nulls = series.is_null().to_numpy()
    return np.where(nulls, np.uint64(0xFFFFFFFFFFFFFFFF), _mix(np.ascontiguousarray(words)))


def frame_digest(frame: pl.DataFrame | None) -> str:
    """Digest of a frame's column names, types and rows, independent of row and column order.

    Each row gets a 64-bit hash of its values (splitmix64 over float bits / integers / sha256 of strings,
    independent of the polars version, unlike ``hash_rows``); the sorted row hashes are hashed with the
    column names and types. Sorting hashes instead of rows keeps this at a few ms for 100k+ rows.
    """
    if frame is None:
        return "none"
    digest = hashlib.sha256()
    columns = sorted(frame.columns)
    rows = np.zeros(frame.height, dtype=np.uint64)
    for position, name in enumerate(columns):
        series = frame[name]
        digest.update(f"{name}\0{series.dtype}\0".encode())
        rows = _mix(rows ^ _column_words(series) ^ _mix(np.full(frame.height, position + 1, dtype=np.uint64)))
    digest.update(frame.height.to_bytes(8, "little"))
    digest.update(np.sort(rows).tobytes())
    return digest.hexdigest()[:VERSION_LENGTH]


def decision_code_files(root: Path) -> list[Path]:
    """Every module of the package under ``root`` that the ``decisions`` package imports, directly or not
    (``mem_pipeline.*`` imports followed through the source, not at run time), sorted."""
    package = root.name
    found: set[Path] = set()
    pending = sorted((root / "decisions").rglob("*.py"))
    while pending:
        path = pending.pop()
        if path in found:
            continue
        found.add(path)
        for node in ast.walk(ast.parse(path.read_bytes())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            for name in names:
                parts = name.split(".")
                if parts[0] != package:
                    continue
                for candidate in (
                    root.joinpath(*parts[1:]).with_suffix(".py"),
                    root.joinpath(*parts[1:], "__init__.py"),
                ):
                    if candidate.is_file() and candidate not in found:
                        pending.append(candidate)
    return sorted(found)


@cache
def code_version(root: Path | None = None) -> str:
    """sha256 over the relative path and bytes of every module a decision depends on (``decision_code_files``):
    prediction code in ``models`` changes the version as much as sizing code in ``risk`` does."""
    base = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in decision_code_files(base):
        digest.update(path.relative_to(base).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:VERSION_LENGTH]
