"""Pipeline tests run Dagster in-process against a throw-away data folder."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import pytest

from assets.defs.features.dbt import DBT_PROJECT
from assets.resources import BrokerResource, DbtResource, LakeResource, LedgerResource, MarketDataResource


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def make_resources(data_dir: Path) -> dict[str, object]:
    return {
        "lake": LakeResource(data_dir=str(data_dir)),
        "market": MarketDataResource(source="sample"),
        "dbt": DbtResource.for_project(DBT_PROJECT),
        "broker": BrokerResource(),
        "ledger": LedgerResource(),
    }


@pytest.fixture
def resources(data_dir: Path) -> dict[str, object]:
    return make_resources(data_dir)


#: The bundled real cross-section: 524 S&P 500 stocks over one year.
BUNDLED_YEAR = (dt.date(2009, 8, 21), dt.date(2010, 8, 20))


@pytest.fixture(scope="session")
def bundled_year(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled year ingested through ``raw_bars``, its dbt layer built and every model fitted as of its last
    day, once per session across xdist workers (a file lock guards the build). Read-only: take ``copy_of`` it."""
    from assets.defs.ingest.assets import raw_bars
    from assets.defs.models.assets import regime_model, slippage_model, vol_forecasts
    from assets.defs.models.signal import signal_model
    from tests.dbt.harness import locked, shared_root
    from tests.pipeline.helpers import build_features, ingest

    root = shared_root(tmp_path_factory) / "bundled-year"
    done = root / "DONE"
    with locked(root.with_suffix(".lock")):
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)  # a half-built folder from a failed attempt
            resources = make_resources(root / "data")
            start, end = BUNDLED_YEAR
            assert dg.materialize([raw_bars], resources=resources, **ingest(start, end)).success
            build_features(resources, start, end)
            models = [regime_model, vol_forecasts, signal_model, slippage_model]
            config = {
                "ops": {a.op.name: {"config": {"as_of": end.isoformat()}} for a in models if a is not slippage_model}
            }
            assert dg.materialize(models, resources=resources, run_config=config).success
            done.touch()
    return root / "data"


def copy_of(data_dir: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of a shared data folder (the lake, the warehouse, the models) to materialize into."""
    target = tmp_path_factory.mktemp(name) / "data"
    shutil.copytree(data_dir, target)
    return target
