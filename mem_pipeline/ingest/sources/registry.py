"""Build the configured ``MarketDataSource`` by name (adapters import lazily: ccxt is heavy)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mem_pipeline.core.errors import SourceError
from mem_pipeline.core.params import load_params
from mem_pipeline.core.paths import PROJECT_ROOT
from mem_pipeline.ingest.sources.base import MarketDataSource

SOURCE_NAMES = ("sample", "synthetic", "files", "ccxt")


def configured_source_name(params: dict[str, Any] | None = None) -> str:
    """``MEM_SOURCE`` if set, else ``source`` in params.yaml."""
    name = os.environ.get("MEM_SOURCE") or (params or load_params()).get("source", "sample")
    if name not in SOURCE_NAMES:
        raise SourceError(f"unknown source {name!r}; choose one of {SOURCE_NAMES}")
    return name


def build_source(name: str, settings: dict[str, Any] | None = None) -> MarketDataSource:
    """The adapter ``name`` configured from ``settings`` (default: its section of params.yaml)."""
    if settings is None:
        settings = dict((load_params().get("sources") or {}).get(name) or {})
    if name == "sample":
        from mem_pipeline.ingest.sources.sample import DATASETS, SampleSource

        return SampleSource(settings.get("datasets") or tuple(DATASETS))
    if name == "synthetic":
        from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, SyntheticSource

        return SyntheticSource(SyntheticConfig.from_params(settings))
    if name == "files":
        from mem_pipeline.ingest.sources.files import FilesSource

        path = Path(os.environ.get("MEM_FILES_DIR") or settings.get("path") or "data/inbox")
        return FilesSource(path if path.is_absolute() else PROJECT_ROOT / path)
    if name == "ccxt":
        from mem_pipeline.ingest.sources.ccxt_source import CcxtConfig, CcxtSource

        return CcxtSource(CcxtConfig.from_params(settings))
    raise SourceError(f"unknown source {name!r}; choose one of {SOURCE_NAMES}")
