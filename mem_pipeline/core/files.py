"""Atomic file writes (temp file in the target's folder + ``os.replace``): a reader sees the old file or the
new one, never half of one; the same content gives the same bytes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import polars as pl


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _replace_with(path: Path, suffix: str, write: object) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)  # type: ignore[operator]
        digest = file_sha256(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the data folder is read by other tools and users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def atomic_write_parquet(frame: pl.DataFrame, path: Path) -> str:
    """Write ``frame`` to ``path`` (zstd, with statistics) atomically; return the file's sha256."""
    return _replace_with(
        Path(path), ".parquet", lambda tmp: frame.write_parquet(tmp, compression="zstd", statistics=True)
    )


def atomic_write_bytes(data: bytes, path: Path) -> str:
    """Write ``data`` to ``path`` atomically; return its sha256."""
    return _replace_with(Path(path), ".tmp", lambda tmp: Path(tmp).write_bytes(data))
