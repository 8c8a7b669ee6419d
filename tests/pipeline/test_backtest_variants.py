"""The backtest's variants on a small synthetic market: the oracle decides with the ground truth (computed here
from the truth tables) and beats everything; each signal ablation publishes what it names (checked against
LightGBM's own probabilities and the fitted candidates); memory weighting starts from an empty memory; the static
system trades fixed sizes above its threshold. Then the Dagster assets: every variant as one backfill run and the
report, with its table, verdicts and charts."""

from __future__ import annotations

import dataclasses
import datetime as dt

import dagster as dg
import numpy as np
import polars as pl
import pytest
from scipy.stats import norm

from assets.partitions import range_tags
from assets.resources import MarketDataResource
from mem_pipeline.backtest.run import BacktestConfig, BacktestParams, BacktestRun, run_backtest
from mem_pipeline.backtest.variants import VARIANTS
from mem_pipeline.backtest.walk_forward import FitCache, WalkForwardConfig
from mem_pipeline.core.paths import Paths
from mem_pipeline.ingest.sources.synthetic import write_truth
from mem_pipeline.models.ensemble import Ensemble
from tests.pipeline.backtest_market import synthetic_history
from tests.pipeline.conftest import make_resources

START, END = dt.date(2016, 7, 1), dt.date(2016, 12, 30)
PARAMS = dataclasses.replace(BacktestParams(), run=BacktestConfig(start=START), walk=WalkForwardConfig("monthly"))
KERNEL = ("mem", "static", "oracle", "no_calibration", "no_thompson", "memory_weighting")


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("variants") / "data"
    history, generated = synthetic_history(data_dir, END)
    write_truth(generated, Paths(data_dir).truth("synthetic"))
    return data_dir, history, generated


@pytest.fixture(scope="module")
def runs(market):
    data_dir, history, _ = market
    cache = FitCache()
    out = {v: run_backtest(Paths(data_dir), "synthetic", v, PARAMS, history=history, cache=cache) for v in KERNEL}
    return out, cache, history


def _signals(run: BacktestRun) -> pl.DataFrame:
    return run.signals.sort("trade_date", "symbol")


def test_the_oracle_publishes_the_true_conditional_probability_of_up(market, runs) -> None:
    data_dir, _, generated = market
    oracle = _signals(runs[0]["oracle"])
    truth = generated.truth_tables()
    config = generated.config.regimes
    regimes = truth.regimes.sort("date")
    # P(s_{t+1} | s_t) from the transition matrix, tomorrow's truth rows (alpha, GARCH variance) joined on dates.
    p_next = np.asarray(config.transition)[regimes["regime"].to_numpy()]
    daily = regimes.select(
        pl.col("date").alias("trade_date"),
        pl.Series("f_mean", p_next @ np.asarray(config.factor_mean)),
        pl.Series("f_var", p_next @ np.asarray(config.factor_vol) ** 2),
        pl.col("date").shift(-1).alias("next_date"),
    )
    rows = truth.conditional_variance.select("date", "symbol", "alpha_mean", "idio_var", "beta")
    expected = (
        oracle.join(daily, on="trade_date")
        .join(rows.rename({"date": "next_date"}), on=["next_date", "symbol"])
        .with_columns(
            mean=pl.col("beta") * pl.col("f_mean") + pl.col("alpha_mean"),
            sd=(pl.col("beta") ** 2 * pl.col("f_var") + generated.config.sectors.vol**2 + pl.col("idio_var")).sqrt(),
        )
    )
    assert expected.height == oracle.filter(pl.col("trade_date") < END).height
    np.testing.assert_allclose(expected["p_up"], norm.cdf(expected["mean"] / expected["sd"]), rtol=1e-12)


def test_the_oracle_calls_direction_better_than_chance_and_beats_every_variant(runs) -> None:
    out = runs[0]
    calls = _signals(out["oracle"]).filter(pl.col("next_ret").is_not_null())
    hit = ((calls["p_up"] > 0.5) == (calls["next_ret"] > 0)).mean()
    se = (0.25 / calls.height) ** 0.5
    assert hit > 0.5 + 2 * se  # better than a coin, significantly
    # ... and as often as the truth says it should: the mean of max(p, 1 - p), within 3 standard errors.
    assert abs(hit - np.maximum(calls["p_up"], 1 - calls["p_up"]).mean()) < 3 * se
    final = {name: run.daily["equity"][-1] for name, run in out.items()}
    assert max(final, key=final.get) == "oracle"


def test_no_calibration_publishes_lightgbms_own_probability_and_no_thompson_the_selected_candidate(runs) -> None:
    out, cache, history = runs
    fitted = cache.signals[START, PARAMS.models.signal]
    day = START + dt.timedelta(days=4)
    features = history.features.filter(pl.col("trade_date") == day).sort("symbol")
    x = features.select(pl.col(c).cast(pl.Float64) for c in fitted.feature_columns).to_numpy()
    raw = fitted.booster.predict(x)  # LightGBM's probability, not ours
    if fitted.published == "ensemble":
        raw = Ensemble.from_json(fitted.ensemble or {}).probability(features, raw)
    got = _signals(out["no_calibration"]).filter(pl.col("trade_date") == day)
    np.testing.assert_allclose(got["p_up"], raw, rtol=1e-9)
    selected = _signals(out["no_thompson"]).filter(pl.col("trade_date") == day)
    np.testing.assert_allclose(selected["p_up"], fitted.predict_selected(features).to_numpy(), rtol=1e-12)
    assert not np.allclose(got["p_up"], _signals(out["mem"]).filter(pl.col("trade_date") == day)["p_up"])


def test_memory_weighting_starts_from_an_empty_memory_then_changes_the_fit(runs) -> None:
    out = runs[0]
    mem, weighted = _signals(out["mem"]), _signals(out["memory_weighting"])
    first_month = pl.col("trade_date") < dt.date(2016, 8, 1)
    assert mem.filter(first_month)["p_up"].to_list() == weighted.filter(first_month)["p_up"].to_list()
    later = pl.col("trade_date") >= dt.date(2016, 8, 1)
    assert not np.allclose(mem.filter(later)["p_up"], weighted.filter(later)["p_up"])


def test_the_static_system_trades_a_fixed_size_above_its_threshold(runs) -> None:
    static = _signals(runs[0]["static"]).join(runs[0]["static"].daily, on="trade_date")
    quiet = static.filter((pl.col("p_up") - 0.5).abs() <= 0.02)
    assert quiet.height > 0 and (quiet["target_notional"] == 0).all()
    # Every symbol above the threshold gets the same size: 750 of a 10,000 account (scaled to equity), or an
    # equal share of the 3,000 gross cap when more than four trade; in whole shares (rounded toward zero, then
    # at most one share handed back while the caps hold).
    active = static.filter(pl.col("target_notional") != 0).with_columns(
        n=pl.len().over("trade_date"), scale=pl.col("equity") / 10_000.0
    )
    size = pl.min_horizontal(750.0 * pl.col("scale"), 3_000.0 * pl.col("scale") / pl.col("n"))
    checked = active.with_columns(size=size, got=pl.col("target_notional").abs())
    assert checked.height > 100
    assert ((checked["got"] - checked["size"]).abs() < checked["reference_price"]).all()
    assert (checked["got"] <= 750.0 * checked["scale"] * (1 + 1e-9)).all()
    gross = checked.group_by("trade_date").agg(pl.col("got").sum(), pl.col("scale").first())
    assert (gross["got"] <= 3_000.0 * gross["scale"] * (1 + 1e-9)).all()
    assert (np.sign(checked["target_notional"]) == np.sign(checked["p_up"] - 0.5)).all()


def test_every_variant_and_the_report_materialize_through_dagster(market) -> None:
    from assets.defs.backtest.assets import backtest, backtest_report

    data_dir = market[0]
    resources = make_resources(data_dir) | {"market": MarketDataResource(source="synthetic")}
    tags = range_tags(VARIANTS[0], VARIANTS[-1])
    result = dg.materialize([backtest], resources=resources, tags=tags)
    assert result.success
    paths = Paths(data_dir)
    assert {p.name for p in paths.backtest.iterdir() if (p / "run.json").exists()} == set(VARIANTS)
    report = dg.materialize([backtest_report], resources=resources)
    assert report.success
    [event] = report.get_asset_materialization_events()
    metadata = event.materialization.metadata
    table = pl.read_csv(paths.reports / "backtest" / "variants.csv")
    assert table["variant"].to_list() == list(VARIANTS)
    assert {"chart_equity", "chart_regimes", "chart_calibration", "variants", "verdicts"} <= set(metadata)
    assert metadata["trials_deflated_by"].value == len(VARIANTS) - 2  # candidates: all but the two baselines
    text = (paths.reports / "backtest" / "report.md").read_text()
    assert "MEM" in text and "![equity](equity.png)" in text
