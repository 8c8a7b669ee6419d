"""Resources: where the data lives, which market-data source feeds the lake, dbt, the broker and the ledger."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import sys
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource
from packaging import version

from mem_pipeline.core.params import section
from mem_pipeline.core.paths import Paths
from mem_pipeline.execution.engine import ExecutionConfig
from mem_pipeline.execution.runtime import ExecutionRuntime
from mem_pipeline.ingest.sources.base import MarketDataSource
from mem_pipeline.ingest.sources.registry import build_source, configured_source_name
from mem_pipeline.risk.limits import RiskLimits


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

    def build(self, args: Sequence[str], context: dg.AssetExecutionContext) -> Iterator[Any]:
        """``dbt <args>`` for the context's assets in this process, not a subprocess (assets/dbt_in_process.py)."""
        from assets.dbt_in_process import dbt_events

        project = Path(self.project_dir)
        profiles = Path(self.profiles_dir) if self.profiles_dir else project
        target = self._get_unique_target_path(context=context)  # dagster-dbt's folder per invocation
        return dbt_events(args, context, project, profiles, target if target.is_absolute() else project / target)

    @classmethod
    def for_project(cls, project_dir: object) -> DbtResource:
        # dbt is installed in the same environment as Dagster; do not rely on PATH.
        return cls(project_dir=project_dir, dbt_executable=str(Path(sys.executable).parent / "dbt"))


def from_env(name: str) -> str | dg.EnvVar:
    """``dg.EnvVar(name)`` when the variable is set (the UI shows its name, never its value; the value is read in
    the run's process), else empty: an unset ``EnvVar`` would fail every run, the paper one included."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


class LedgerResource(dg.ConfigurableResource):
    """The execution ledger: ``url`` a SQLAlchemy URL (PostgreSQL for several hosts), from ``MEM_LEDGER_URL``;
    empty: params.yaml's ``execution.ledger_url``, else SQLite under ``data/ledger``."""

    url: str = ""


class BrokerResource(dg.ConfigurableResource):
    """Where orders go: ``paper`` (the default; fills against the lake's bars) or ``ccxt`` (the exchange of
    ``execution.ccxt``), from ``MEM_BROKER`` else ``execution.broker``. The exchange's credentials come only
    from the environment (``MEM_CCXT_API_KEY``, ``MEM_CCXT_SECRET``) as ``dg.EnvVar``s: never in run config."""

    kind: str = ""
    api_key: str = ""
    secret: str = ""

    def runtime(self, paths: Paths, ledger: LedgerResource, limits: RiskLimits | None = None) -> ExecutionRuntime:
        """The run's ledger, broker, gate and circuit breaker (``ExecutionRuntime``) for these settings."""
        config = ExecutionConfig.from_params(section("execution"))
        engine = dataclasses.replace(
            config.engine, broker=self.kind or config.engine.broker, ledger_url=ledger.url or config.engine.ledger_url
        )
        credentials = {"apiKey": self.api_key, "secret": self.secret} if self.api_key or self.secret else None
        return ExecutionRuntime.build(
            dataclasses.replace(config, engine=engine), paths, limits=limits, credentials=credentials
        )
