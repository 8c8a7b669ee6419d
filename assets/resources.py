"""Resources: where the data lives and which market-data source feeds the lake."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mem_pipeline.core.paths import Paths
from mem_pipeline.ingest.sources.base import MarketDataSource
from mem_pipeline.ingest.sources.registry import build_source, configured_source_name


class LakeResource(dg.ConfigurableResource):
    """The data folder (``MEM_DATA_DIR`` or ``data/``): lake, quarantine, warehouse, models, ledger."""

    data_dir: str = str(Paths.from_env().data)

    def paths(self) -> Paths:
        return Paths(data=Path(self.data_dir).resolve())


class MarketDataResource(dg.ConfigurableResource):
    """The configured source (``MEM_SOURCE`` or ``source`` in params.yaml); adapters read their own
    section of params.yaml, and credentials (ccxt) only from the environment."""

    source: str = configured_source_name()

    def build(self) -> MarketDataSource:
        return build_source(self.source)
