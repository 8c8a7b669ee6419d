"""Pipeline tests run Dagster in-process against a throw-away data folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from dagster_dbt import DbtCliResource

from assets.defs.features.dbt import DBT_PROJECT
from assets.resources import LakeResource, MarketDataResource


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def make_resources(data_dir: Path) -> dict[str, object]:
    return {
        "lake": LakeResource(data_dir=str(data_dir)),
        "market": MarketDataResource(source="sample"),
        "dbt": DbtCliResource(project_dir=DBT_PROJECT, dbt_executable=str(Path(sys.executable).parent / "dbt")),
    }


@pytest.fixture
def resources(data_dir: Path) -> dict[str, object]:
    return make_resources(data_dir)
