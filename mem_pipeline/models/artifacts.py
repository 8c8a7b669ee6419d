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
    """Point ``root/name/current.json`` at ``artifact`` (atomically): what downstream steps use."""
    pointer = root / name / "current.json"
    tmp = pointer.with_suffix(".tmp")
    write_json(tmp, {"artifact": artifact.name, **info})
    os.replace(tmp, pointer)


def current_artifact(root: Path, name: str) -> Path:
    """The artifact folder ``current.json`` points at; a clear error if the model was never fitted."""
    pointer = root / name / "current.json"
    if not pointer.exists():
        from mem_pipeline.errors import MemError

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
