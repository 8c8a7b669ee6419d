"""Everything a trade decision for day ``t`` reads, gathered point in time.

Each model is the fit whose ``as_of`` is ``<= t`` (``artifact_as_of``), never a later one; the features
are the partition's rows; regime probabilities and volatility forecasts are recomputed from that fit's
parameters over returns up to ``t`` (filtered, never smoothed); the returns history stops at ``t``.
The returned hashes (model artifacts and the digests of the input frames) feed the decision version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from mem_pipeline.core.paths import Paths
from mem_pipeline.decisions.version import frame_digest
from mem_pipeline.features.warehouse import read_relation, relation_columns
from mem_pipeline.models.artifacts import artifact_as_of
from mem_pipeline.models.regime import FittedRegime
from mem_pipeline.models.signal import FittedSignal
from mem_pipeline.models.slippage import FittedSlippage
from mem_pipeline.models.volatility import FittedVol

#: What sizing needs of a symbol's features row; a symbol without all of them gets no signal that day.
REQUIRED_FEATURES = ("close", "dollar_volume_20d", "spread_est", "rv_20d")
MODELS = ("signal", "regime", "volatility", "slippage")


@dataclass(frozen=True)
class DecisionInputs:
    decision_date: dt.date
    features: pl.DataFrame  # the day's fct_features_daily rows with every REQUIRED_FEATURES value
    signals: pl.DataFrame  # symbol, p_up, payoff_ratio
    returns: pl.DataFrame  # symbol, trade_date, ret_1d (<= decision_date)
    vol_forecasts: pl.DataFrame  # symbol, trade_date, vol_forecast (<= decision_date)
    regime_probabilities: pl.DataFrame  # trade_date, p_regime_0.. (<= decision_date)
    cost_model: Callable[[pl.DataFrame], Any]
    model_hashes: dict[str, str]
    data_versions: dict[str, str]
    skipped: tuple[str, ...]  # symbols with a features row that lacks a required value (warm-up)


def load_decision_inputs(paths: Paths, day: dt.date) -> DecisionInputs:
    """Gather the inputs of the decision for ``day`` (raises ``MemError`` if a model has no fit up to ``day``)."""
    located = {name: artifact_as_of(paths.models, name, day)[0] for name in MODELS}
    signal = FittedSignal.load(located["signal"])
    regime = FittedRegime.load(located["regime"])
    vol = FittedVol.load(located["volatility"])
    slippage = FittedSlippage.load(located["slippage"])

    columns = relation_columns(paths, "fct_features_daily")
    day_rows = read_relation(paths, "fct_features_daily", columns, day, since=day)
    complete = pl.all_horizontal(pl.col(c).is_not_null() & pl.col(c).is_finite() for c in REQUIRED_FEATURES)
    features = day_rows.filter(complete)
    skipped = tuple(day_rows.filter(~complete)["symbol"].to_list())
    p_up = signal.predict_signal(features) if features.height else pl.Series("p_up", [], dtype=pl.Float64())
    signals = features.select("symbol").with_columns(p_up.alias("p_up"), payoff_ratio=pl.lit(signal.payoff_ratio))

    returns = read_relation(paths, "int_bars__returns", ["symbol", "trade_date", "ret_1d"], day)
    market = read_relation(paths, "int_market__daily", ["trade_date", "mkt_ret_1d"], day)
    regime_probabilities = regime.filtered_probabilities(market.rename({"mkt_ret_1d": "mkt_ret"}).drop_nulls())
    vol_forecasts = vol.forecast(returns)
    return DecisionInputs(
        decision_date=day,
        features=features,
        signals=signals,
        returns=returns,
        vol_forecasts=vol_forecasts,
        regime_probabilities=regime_probabilities,
        cost_model=lambda orders: slippage.predict(orders)["expected_cost_bps"],
        model_hashes={name: Path(path).name for name, path in located.items()},
        data_versions={
            "fct_features_daily": frame_digest(day_rows),
            "int_bars__returns": frame_digest(returns),
            "int_market__daily": frame_digest(market),
        },
        skipped=skipped,
    )
