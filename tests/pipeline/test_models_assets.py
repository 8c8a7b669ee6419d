"""Model assets through Dagster: checks pass on real data; a refit never reads past ``as_of``."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest

from assets.defs.ingest.assets import raw_bars
from assets.defs.models.assets import regime_model, slippage_model, vol_forecasts
from tests.pipeline.conftest import BUNDLED_YEAR, copy_of, make_resources
from tests.pipeline.helpers import build_features, ingest

CROSS_SECTION = BUNDLED_YEAR  # the bundled 524-stock year
AS_OF = dt.date(2010, 6, 30)


def _lake(tmp_path_factory, end: dt.date):
    data_dir = tmp_path_factory.mktemp("models") / "data"
    resources = make_resources(data_dir)
    assert dg.materialize([raw_bars], resources=resources, **ingest(CROSS_SECTION[0], end)).success
    build_features(resources, CROSS_SECTION[0], end)
    return data_dir, resources


@pytest.fixture(scope="module")
def full_lake(bundled_year, tmp_path_factory):
    data_dir = copy_of(bundled_year, tmp_path_factory, "models")
    return data_dir, make_resources(data_dir)


def _fit(assets, resources, as_of: dt.date | None = None) -> dg.ExecuteInProcessResult:
    config = {"ops": {a.op.name: {"config": {"as_of": as_of.isoformat()}} for a in assets}} if as_of else None
    return dg.materialize(assets, resources=resources, run_config=config)


def _current(data_dir, name: str) -> str:
    return json.loads((data_dir / "models" / name / "current.json").read_text())["artifact"]


def test_models_fit_and_pass_their_checks_on_real_data(full_lake) -> None:
    data_dir, resources = full_lake
    result = _fit([regime_model, vol_forecasts, slippage_model], resources)
    assert result.success
    checks = {(c.asset_key.to_user_string(), c.check_name): c.passed for c in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks
    for name in ("regime", "volatility", "slippage"):
        assert (data_dir / "models" / name / _current(data_dir, name)).is_dir()
    forecasts = pl.read_parquet(data_dir / "forecasts" / "vol_forecasts.parquet")
    assert forecasts["trade_date"].max() == CROSS_SECTION[1]
    assert forecasts["vol_forecast"].is_finite().all()


def test_a_refit_as_of_a_date_reads_nothing_after_it(full_lake, tmp_path_factory) -> None:
    data_dir, resources = full_lake
    assert _fit([regime_model, vol_forecasts], resources, AS_OF).success
    truncated_dir, truncated = _lake(tmp_path_factory, AS_OF)
    assert _fit([regime_model, vol_forecasts], truncated).success
    # Same inputs give the same content hash: the full lake's later rows did not reach the fit.
    assert _current(data_dir, "regime") == _current(truncated_dir, "regime")
    assert _current(data_dir, "volatility") == _current(truncated_dir, "volatility")
