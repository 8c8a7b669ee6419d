"""Model artifacts: point-in-time choice of a fitted model from the publication history."""

from __future__ import annotations

import datetime as dt

import pytest

from mem_pipeline.core.errors import MemError
from mem_pipeline.models import artifacts


def _publish(root, name: str, text: str, **info: object):
    artifact = artifacts.save_artifact(root, name, lambda d: (d / "model.txt").write_text(text))
    artifacts.set_current(root, name, artifact, info)
    return artifact


def test_artifact_as_of_never_returns_a_model_fitted_on_later_data(tmp_path) -> None:
    june = _publish(tmp_path, "m", "june", as_of="2020-06-01")
    jan = _publish(tmp_path, "m", "jan", as_of="2020-01-01")  # a backfill refit published after June's
    later = _publish(tmp_path, "m", "next year", as_of="2021-01-01")
    assert artifacts.current_artifact(tmp_path, "m") == later
    assert artifacts.artifact_as_of(tmp_path, "m", dt.date(2020, 7, 1))[0] == june
    assert artifacts.artifact_as_of(tmp_path, "m", dt.date(2020, 6, 1))[0] == june  # as_of == day is allowed
    assert artifacts.artifact_as_of(tmp_path, "m", dt.date(2020, 5, 31))[0] == jan
    with pytest.raises(MemError, match="no m model fitted on data up to 2019-12-31"):
        artifacts.artifact_as_of(tmp_path, "m", dt.date(2019, 12, 31))


def test_a_model_without_market_history_is_eligible_on_any_day(tmp_path) -> None:
    timeless = _publish(tmp_path, "slip", "fills", training="simulated fills")
    assert artifacts.artifact_as_of(tmp_path, "slip", dt.date(1990, 1, 1))[0] == timeless
