"""The slippage model against the synthetic market's known impact function (the oracle).

Fills come from ``simulate_fills`` on a seeded 20-symbol x 1000-business-day market, so the true
expected cost of every fill (``true_cost_bps``) is known: the noise floor (MAE of the truth against
the realised cost) is the best any model can score. The truth has ``delta = 0.6``, so the square-root
law is misspecified on purpose and the model should beat it; with ``delta = 0.5`` the square-root fit
must recover ``eta``.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from mem_pipeline.ingest.sources.synthetic import ImpactParams, SyntheticConfig, generate_market, simulate_fills
from mem_pipeline.models.artifacts import content_hash
from mem_pipeline.models.slippage import (
    FEATURES,
    FittedSlippage,
    SlippageConfig,
    SlippageError,
    fit_slippage,
    fit_square_root_law,
    noise_floor_mae,
    order_features,
    plot_predicted_vs_realized,
    time_split,
)

N_SYMBOLS, N_DAYS, N_FILLS = 20, 1000, 30_000
START = dt.date(2010, 1, 4)  # a Monday
END = np.busday_offset(np.datetime64(START), N_DAYS - 1).item()
MARKET = SyntheticConfig(seed=3, n_symbols=N_SYMBOLS, start=START, end=END)
CONFIG = SlippageConfig(seed=11)  # LightGBM defaults of the module: l2, 300 trees, 7 leaves, 200 per leaf


@pytest.fixture(scope="module")
def fills() -> pl.DataFrame:
    market = generate_market(MARKET)
    assert market.n_days == N_DAYS and market.config.impact.delta != 0.5
    return simulate_fills(market, N_FILLS, seed=13)


@pytest.fixture(scope="module")
def fitted(fills: pl.DataFrame) -> FittedSlippage:
    return fit_slippage(fills, CONFIG)


@pytest.fixture(scope="module")
def test_part(fills: pl.DataFrame) -> pl.DataFrame:
    return time_split(fills, CONFIG.test_fraction)[1]


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


# --------------------------------------------------------------------------------------------
# Accuracy against the oracle
# --------------------------------------------------------------------------------------------


def test_model_mae_is_within_15_percent_of_the_noise_floor_and_beats_the_square_root_law(
    fitted: FittedSlippage, test_part: pl.DataFrame
) -> None:
    realized = test_part["realized_cost_bps"].to_numpy()
    truth = test_part["true_cost_bps"].to_numpy()
    model = mae(fitted.predict(test_part)["expected_cost_bps"].to_numpy(), realized)
    baseline = mae(fitted.baseline_predict(test_part).to_numpy(), realized)
    floor = mae(truth, realized)
    assert noise_floor_mae(test_part) == pytest.approx(floor, rel=1e-12)
    message = (
        f"test MAE (bps): LightGBM {model:.4f}, square-root law {baseline:.4f}, noise floor {floor:.4f} "
        f"(ratios to floor {model / floor:.4f}, {baseline / floor:.4f})"
    )
    assert model <= 1.15 * floor, message
    assert model < baseline, message
    # The same comparison without the noise: distance to the true expected cost.
    oracle_model = mae(fitted.predict(test_part)["expected_cost_bps"].to_numpy(), truth)
    oracle_baseline = mae(fitted.baseline_predict(test_part).to_numpy(), truth)
    assert oracle_model < oracle_baseline, f"MAE vs truth: model {oracle_model:.4f}, baseline {oracle_baseline:.4f}"
    # metrics() reports the same figures
    m = fitted.metrics()
    assert m["mae_model"] == pytest.approx(model, rel=1e-12)
    assert m["mae_baseline"] == pytest.approx(baseline, rel=1e-12)
    assert m["noise_floor_mae"] == pytest.approx(floor, rel=1e-12)
    assert m["n_test"] == test_part.height
    assert m["rmse_model"] >= m["mae_model"] and m["rmse_baseline"] >= m["mae_baseline"]


def test_noise_floor_by_hand() -> None:
    frame = pl.DataFrame({"true_cost_bps": [1.0, 2.0, 3.0], "realized_cost_bps": [2.0, 0.0, 3.5]})
    assert noise_floor_mae(frame) == pytest.approx((1.0 + 2.0 + 0.5) / 3)
    with pytest.raises(SlippageError, match="true_cost_bps"):
        noise_floor_mae(frame.drop("true_cost_bps"))


# --------------------------------------------------------------------------------------------
# The square-root baseline
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("noise_scale", [0.0, 0.3])
def test_square_root_fit_recovers_eta_when_the_truth_is_a_square_root_law(noise_scale: float) -> None:
    eta = 0.7
    impact = ImpactParams(eta=eta, delta=0.5, noise_scale=noise_scale)
    fills = simulate_fills(generate_market(MARKET.replace(impact=impact)), 20_000, seed=5)
    y = fit_square_root_law(fills)

    x = fills["sigma"].to_numpy() * 1e4 * np.sqrt(fills["size_over_adv"].to_numpy())
    r = fills["realized_cost_bps"].to_numpy() - fills["spread_bps"].to_numpy() / 2
    # an independent solver of the same least-squares problem
    assert y == pytest.approx(np.linalg.lstsq(x[:, None], r, rcond=None)[0][0], rel=1e-10)
    if noise_scale == 0:
        assert y == pytest.approx(eta, rel=1e-10)
    else:
        # The truth's noise sd is noise_scale * x per fill, so Var(Y_hat) = noise_scale^2 sum x^4 / (sum x^2)^2.
        se = noise_scale * math.sqrt(float(np.sum(x**4))) / float(np.sum(x**2))
        assert abs(y - eta) <= 4 * se, f"Y = {y:.5f}, eta = {eta}, 4 se = {4 * se:.5f}"


def test_the_fitted_baseline_uses_the_train_dates_only(fitted: FittedSlippage, fills: pl.DataFrame) -> None:
    train, _ = time_split(fills, CONFIG.test_fraction)
    assert fitted.baseline_y == pytest.approx(fit_square_root_law(train), rel=1e-12)
    assert fitted.baseline_y != pytest.approx(fit_square_root_law(fills), rel=1e-9)


# --------------------------------------------------------------------------------------------
# Quantiles
# --------------------------------------------------------------------------------------------


def test_quantile_coverage_on_the_test_split(fitted: FittedSlippage, test_part: pl.DataFrame) -> None:
    """Tolerances: ~7,500 test fills give a binomial sd of sqrt(.9 * .1 / 7500) = 0.0035 at p90 and
    0.0025 at p95, so sampling alone stays within +-0.01. The bands ([0.85, 0.95], [0.90, 0.98]) are
    wider on purpose: they allow for the model's own bias (finite trees, a test period whose vol
    differs from training) while still failing a quantile model that is plainly mis-calibrated
    (e.g. one that predicts the mean: coverage ~0.5)."""
    predicted = fitted.predict(test_part)
    realized = test_part["realized_cost_bps"].to_numpy()
    p90 = float(np.mean(realized <= predicted["p90_cost_bps"].to_numpy()))
    p95 = float(np.mean(realized <= predicted["p95_cost_bps"].to_numpy()))
    assert 0.85 <= p90 <= 0.95, f"coverage p90 = {p90:.4f} over {test_part.height} test fills"
    assert 0.90 <= p95 <= 0.98, f"coverage p95 = {p95:.4f} over {test_part.height} test fills"
    assert fitted.metrics()["coverage_p90"] == pytest.approx(p90)
    assert fitted.metrics()["coverage_p95"] == pytest.approx(p95)


def test_quantiles_are_ordered_on_every_row(fitted: FittedSlippage, fills: pl.DataFrame) -> None:
    p = fitted.predict(fills)
    assert p.columns == ["expected_cost_bps", "p90_cost_bps", "p95_cost_bps"]
    assert p.height == fills.height
    assert (p["p95_cost_bps"] >= p["p90_cost_bps"]).all()
    assert (p["p90_cost_bps"] >= p["expected_cost_bps"]).all()
    # extreme orders outside the training range still come out ordered
    odd = fills.head(4).with_columns(
        size_over_adv=pl.Series([0.0, 1e-7, 0.5, 2.0]), participation=pl.Series([0.0, 0.0, 3.0, 10.0])
    )
    q = fitted.predict(odd)
    assert (q["p95_cost_bps"] >= q["p90_cost_bps"]).all() and (q["p90_cost_bps"] >= q["expected_cost_bps"]).all()


# --------------------------------------------------------------------------------------------
# Time split
# --------------------------------------------------------------------------------------------


def test_no_test_date_precedes_any_train_date(fills: pl.DataFrame, fitted: FittedSlippage) -> None:
    shuffled = fills.sample(fraction=1.0, shuffle=True, seed=1)  # row order must not matter
    train, test = time_split(shuffled, 0.25)
    assert train["date"].max() < test["date"].min()
    assert train.height + test.height == fills.height
    n_dates = fills["date"].n_unique()
    assert test["date"].n_unique() == math.ceil(0.25 * n_dates)
    m = fitted.metrics()
    assert m["train_end"] < m["test_start"]
    assert m["n_train"] + m["n_test"] == fills.height


def test_time_split_needs_two_dates(fills: pl.DataFrame) -> None:
    one_day = fills.filter(pl.col("date") == fills["date"].min())
    with pytest.raises(SlippageError, match="2 distinct dates"):
        time_split(one_day, 0.25)


# --------------------------------------------------------------------------------------------
# Determinism and persistence
# --------------------------------------------------------------------------------------------


def test_same_seed_same_predictions_and_artifact(fitted: FittedSlippage, fills: pl.DataFrame, tmp_path) -> None:
    again = fit_slippage(fills, CONFIG)
    first, second = fitted.predict(fills), again.predict(fills)
    for column in first.columns:
        assert np.array_equal(first[column].to_numpy(), second[column].to_numpy()), column
    assert fitted.metrics() == again.metrics()
    path = fitted.save_artifact(tmp_path)
    assert again.save_artifact(tmp_path) == path  # byte-identical files: one content-addressed folder
    assert path.parent == tmp_path / "slippage" and path.name == content_hash(path)
    assert [p.name for p in (tmp_path / "slippage").iterdir()] == [path.name]
    assert sorted(p.name for p in path.iterdir()) == ["mean.txt", "p90.txt", "p95.txt", "slippage.json"]


def test_save_load_round_trip(fitted: FittedSlippage, fills: pl.DataFrame, tmp_path) -> None:
    path = fitted.save_artifact(tmp_path)
    loaded = FittedSlippage.load(path)
    assert loaded.config == fitted.config
    assert loaded.baseline_y == fitted.baseline_y
    assert loaded.metrics() == fitted.metrics()
    assert loaded.predict(fills).equals(fitted.predict(fills))
    assert loaded.baseline_predict(fills).equals(fitted.baseline_predict(fills))
    assert loaded.save_artifact(tmp_path) == path  # re-saving a loaded model changes nothing


def test_a_different_config_is_a_different_artifact(fitted: FittedSlippage, fills: pl.DataFrame, tmp_path) -> None:
    other = fit_slippage(fills, CONFIG.replace(n_estimators=20, quantiles=(0.9,)))
    assert other.save_artifact(tmp_path) != fitted.save_artifact(tmp_path)
    assert other.predict(fills.head(3)).columns == ["expected_cost_bps", "p90_cost_bps"]


def test_load_refuses_other_artifacts(tmp_path) -> None:
    (tmp_path / "slippage.json").write_text('{"kind": "volatility", "format_version": 1}\n', encoding="utf-8")
    with pytest.raises(SlippageError, match="not a slippage artifact"):
        FittedSlippage.load(tmp_path)


# --------------------------------------------------------------------------------------------
# Shape of the learned function
# --------------------------------------------------------------------------------------------


def test_predicted_cost_increases_with_size(fitted: FittedSlippage, test_part: pl.DataFrame) -> None:
    """Impact rises with Q/ADV in the truth; sizes are drawn independently of the market state, so
    mean predictions per log-size decile must rise too (and so must the true costs: a sanity check)."""
    size = np.log(test_part["size_over_adv"].to_numpy())
    edges = np.quantile(size, np.linspace(0, 1, 11))
    which = np.clip(np.searchsorted(edges, size, side="right") - 1, 0, 9)
    predicted = fitted.predict(test_part)
    for column in ("expected_cost_bps", "p90_cost_bps", "p95_cost_bps"):
        means = np.array([predicted[column].to_numpy()[which == b].mean() for b in range(10)])
        assert (np.diff(means) > 0).all(), f"{column} by size decile: {np.round(means, 3)}"
    truth = np.array([test_part["true_cost_bps"].to_numpy()[which == b].mean() for b in range(10)])
    assert (np.diff(truth) > 0).all()


# --------------------------------------------------------------------------------------------
# Inputs and configuration
# --------------------------------------------------------------------------------------------


def test_order_features(fills: pl.DataFrame) -> None:
    head = fills.head(4)
    x = order_features(head)
    assert x.shape == (4, len(FEATURES)) and x.dtype == np.float64
    assert np.array_equal(x[:, 0], head["size_over_adv"].to_numpy())
    assert np.array_equal(x[:, 4], np.where(head["side"].to_numpy() == "buy", 1.0, -1.0))
    numeric = head.with_columns(side=pl.when(pl.col("side") == "buy").then(1).otherwise(-1))
    assert np.array_equal(order_features(numeric), x)
    assert np.array_equal(order_features(head.with_columns(pl.col("side").str.to_uppercase())), x)
    with pytest.raises(SlippageError, match="missing columns"):
        order_features(head.drop("sigma"))
    with pytest.raises(SlippageError, match="side"):
        order_features(head.with_columns(side=pl.lit("hold")))
    with pytest.raises(SlippageError, match="sigma"):
        order_features(head.with_columns(sigma=pl.lit(0.0)))
    with pytest.raises(SlippageError, match="non-finite"):
        order_features(head.with_columns(spread_bps=pl.lit(float("nan"))))


def test_config_from_params() -> None:
    config = SlippageConfig.from_params({"num_leaves": 15, "quantiles": [0.8, 0.9], "objective": "l1"})
    assert config.num_leaves == 15 and config.quantiles == (0.8, 0.9) and config.objective == "l1"
    assert SlippageConfig.from_params(config.to_params()) == config
    assert SlippageConfig.from_params(None) == SlippageConfig()
    with pytest.raises(SlippageError, match="unknown keys"):
        SlippageConfig.from_params({"leaves": 3})
    with pytest.raises(SlippageError, match="quantiles"):
        SlippageConfig(quantiles=(0.95, 0.9))
    with pytest.raises(SlippageError, match="objective"):
        SlippageConfig(objective="poisson")
    with pytest.raises(SlippageError, match="test_fraction"):
        SlippageConfig(test_fraction=1.0)


def test_plot_is_a_png(fitted: FittedSlippage, test_part: pl.DataFrame, tmp_path) -> None:
    path = plot_predicted_vs_realized(fitted, test_part, tmp_path / "plots" / "slippage.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ledger_fills_join_the_training_rows_only(fitted: FittedSlippage, fills: pl.DataFrame) -> None:
    """Extra (ledger) fills add training rows and change the model, but the scores stay on the same test dates."""
    extra = simulate_fills(generate_market(MARKET.replace(seed=4)), 2_000, seed=5).drop("true_cost_bps")
    with_ledger = fit_slippage(fills, CONFIG, extra_train=extra)
    base, more = fitted.metrics(), with_ledger.metrics()
    assert more["n_train"] == base["n_train"] + extra.height and more["n_train_extra"] == extra.height
    assert (more["n_test"], more["test_start"], more["test_end"]) == (
        base["n_test"],
        base["test_start"],
        base["test_end"],
    )
    assert more["mae_model"] != base["mae_model"]
    assert fit_slippage(fills, CONFIG, extra_train=extra.head(0)).metrics()["mae_model"] == base["mae_model"]
