"""Model artifacts: ``<models>/<name>/<content-hash>/``, written atomically, immutable once written.

A fitted model saves its files into a scratch folder; the folder's content hash names it. The same
fit (same data, parameters and code) gives the same hash, so refits that change nothing add nothing,
and a decision can cite the exact artifact it used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HISTORY = "history.jsonl"


def content_hash(directory: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order (first 16 hex digits)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def save_artifact(root: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Let ``write`` fill a scratch folder, then publish it as ``root/name/<hash>``; return that path."""
    parent = root / name
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    try:
        write(scratch)
        target = parent / content_hash(scratch)
        if target.exists():  # the same fit was saved before: keep the existing (identical) copy
            shutil.rmtree(scratch)
        else:
            os.chmod(scratch, 0o755)
            os.replace(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


def write_json(path: Path, payload: Any) -> None:
    """Deterministic JSON (sorted keys) so that equal payloads hash equally."""
    path.write_text(json.dumps(payload, sort_keys=True, indent=2, default=str) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def set_current(root: Path, name: str, artifact: Path, info: dict[str, Any]) -> None:
    """Point ``root/name/current.json`` at ``artifact`` (atomically): what downstream steps use.

    Every publication is also appended to ``history.jsonl``, so a step dated ``t`` can find the model
    that was fitted on data up to ``t`` (``artifact_as_of``) even after later refits."""
    pointer = root / name / "current.json"
    tmp = pointer.with_suffix(".tmp")
    record = {"artifact": artifact.name, **info}
    write_json(tmp, record)
    os.replace(tmp, pointer)
    with (root / name / HISTORY).open("a", encoding="utf-8") as history:
        history.write(json.dumps(record, sort_keys=True, default=str) + "\n")


def artifact_as_of(root: Path, name: str, day: Any) -> tuple[Path, dict[str, Any]]:
    """The artifact fitted on the most recent data that is still ``<= day`` (its ``as_of``), and its record.

    Point-in-time model choice: a decision for ``day`` must never use a model that saw later data.
    A record without ``as_of`` (a model trained on no market history, e.g. on simulated fills) is
    eligible on any day. Raises ``MemError`` naming the model and the date when no such fit exists."""
    from mem_pipeline.core.errors import MemError

    history = root / name / HISTORY
    records = []
    if history.exists():
        records = [json.loads(line) for line in history.read_text(encoding="utf-8").splitlines() if line.strip()]
    eligible = [r for r in records if str(r.get("as_of", "")) <= str(day)]
    if not eligible:
        raise MemError(
            f"no {name} model fitted on data up to {day} under {root / name}: "
            f"refit it (the models job) with as_of <= {day} first"
        )
    latest = max(str(r.get("as_of", "")) for r in eligible)
    best = [r for r in eligible if str(r.get("as_of", "")) == latest][-1]  # the last publication wins ties
    return root / name / best["artifact"], best


def current_artifact(root: Path, name: str) -> Path:
    """The artifact folder ``current.json`` points at; a clear error if the model was never fitted."""
    pointer = root / name / "current.json"
    if not pointer.exists():
        from mem_pipeline.core.errors import MemError

        raise MemError(f"no fitted {name} model under {root / name}: materialize the {name} asset first")
    return root / name / read_json(pointer)["artifact"]


def check_header(
    meta: dict[str, Any], *, kind: str, format_version: int, error: type[Exception], where: str, key: str = "kind"
) -> None:
    """Refuse an artifact of another kind or format before reading any of it (``meta[key]`` names its kind)."""
    if meta.get(key) != kind or meta.get("format_version") != format_version:
        raise error(
            f"{where}: not a {kind} artifact of format {format_version} "
            f"({key}={meta.get(key)!r}, format_version={meta.get('format_version')!r})"
        )


def save_png(figure: Any, path: Path) -> Path:
    """Write a matplotlib figure as PNG (folders created); used for plots in Dagster metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
