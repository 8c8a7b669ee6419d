"""Pipeline tests run Dagster in-process against a throw-away data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.resources import LakeResource, MarketDataResource


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def resources(data_dir: Path) -> dict[str, object]:
    return {"lake": LakeResource(data_dir=str(data_dir)), "market": MarketDataResource(source="sample")}
