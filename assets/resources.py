"""Resources: where the data lives and which market-data source feeds the lake."""

from __future__ import annotations

import importlib.metadata
import sys
from functools import cached_property
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from packaging import version

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


class DbtResource(DbtCliResource):
    """dagster-dbt's dbt CLI resource for MEM's project, run with the dbt of this environment.

    dagster-dbt asks the executable for its version (``dbt --version``, a 1.5 s subprocess in every run); the
    executable is this environment's, so its version is the installed dbt-core's."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    @classmethod
    def for_project(cls, project_dir: object) -> DbtResource:
        # dbt is installed in the same environment as Dagster; do not rely on PATH.
        return cls(project_dir=project_dir, dbt_executable=str(Path(sys.executable).parent / "dbt"))
