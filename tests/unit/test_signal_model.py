"""The signal model: purged/embargoed walk-forward splits, calibration against a known P(up | x),
no lookahead, persistence, and the Thompson-sampling allocator."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from mem_pipeline.models.ensemble import fit_ensemble
from mem_pipeline.models.signal import (
    FittedSignal,
    SignalConfig,
    SignalError,
    ThompsonAllocator,
    ensemble_positions,
    expected_calibration_error,
    fit_signal,
    payoff_ratio,
    select_candidate,
    strategy_outcomes,
    strategy_signals,
    training_frame,
    walk_forward_splits,
)

FEATURES = ["x1", "x2", "x3"]
START = dt.date(2012, 1, 2)


def _dates(n: int) -> list[dt.date]:
    return [START + dt.timedelta(days=i) for i in range(n)]


def synthetic(n_dates: int = 1000, n_symbols: int = 20, seed: int = 7) -> pl.DataFrame:
    """True P(up | x) = sigmoid(1.2 x1 - 0.8 x2); x3 is noise."""
    rng = np.random.default_rng(seed)
    n = n_dates * n_symbols
    x = rng.standard_normal((n, 3))
    p = 1 / (1 + np.exp(-(1.2 * x[:, 0] - 0.8 * x[:, 1])))
    up = (rng.random(n) < p).astype(np.int64)
    ret = np.where(up == 1, 1, -1) * np.abs(rng.normal(0, 0.01, n))
    dates = pl.Series(np.repeat(np.array(_dates(n_dates), dtype="datetime64[D]"), n_symbols)).cast(pl.Date)
    symbols = np.tile([f"S{i:02d}" for i in range(n_symbols)], n_dates)
    return pl.DataFrame(
        {
            "symbol": symbols,
            "trade_date": dates,
            "x1": x[:, 0],
            "x2": x[:, 1],
            "x3": x[:, 2],
            "p_true": p,
            "up_1d": up,
            "fwd_ret_1d": ret,
        }
    )


FAST = SignalConfig(n_splits=4, n_estimators=100, learning_rate=0.05, num_leaves=7, min_child_samples=100, seed=3)


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    return synthetic()


@pytest.fixture(scope="module")
def fitted_isotonic(data: pl.DataFrame) -> FittedSignal:
    return fit_signal(data, FEATURES, FAST.replace(calibration="isotonic"))


# ---- splits ---------------------------------------------------------------------------------


def test_splits_never_train_on_or_after_test_start() -> None:
    dates = _dates(120)
    folds = walk_forward_splits(dates * 3, n_splits=5, horizon_days=2, embargo_days=3)  # duplicates are fine
    assert len(folds) == 5
    for fold in folds:
        assert fold.train.max() < fold.test.min()
        assert len(set(fold.train) & set(fold.test)) == 0
    tests = np.concatenate([f.test for f in folds])
    assert len(tests) == len(set(tests))  # test blocks are disjoint and contiguous
    assert tests[-1] == dates[-1]
    assert [len(f.train) for f in folds] == sorted(len(f.train) for f in folds)  # expanding


def test_purge_and_embargo_are_exact() -> None:
    dates = _dates(30)
    # 30 dates, 2 folds -> blocks [0,10), [10,20), [20,30)
    folds = walk_forward_splits(dates, n_splits=2, horizon_days=2, embargo_days=3)
    second = folds[1]
    assert list(second.test) == dates[20:30]
    # label window of t is t .. t+2 (trading dates): t = dates[18], dates[19] reach the test block.
    assert list(second.purged) == dates[18:20]
    assert list(second.embargoed) == dates[15:18]
    assert len(second.embargoed) == 3
    assert list(second.train) == dates[:15]
    # every remaining train date's label window ends before the test start
    index = {d: i for i, d in enumerate(dates)}
    assert all(index[d] + 2 < 20 for d in second.train)
    # no embargo: the gap is the purge only
    no_embargo = walk_forward_splits(dates, n_splits=2, horizon_days=2, embargo_days=0)[1]
    assert list(no_embargo.train) == dates[:18] and len(no_embargo.embargoed) == 0


def test_splits_refuse_too_few_dates() -> None:
    with pytest.raises(SignalError):
        walk_forward_splits(_dates(6), n_splits=5, horizon_days=1, embargo_days=5)


def test_config_from_params() -> None:
    assert SignalConfig.from_params({"calibration": "platt", "n_splits": 3}) == SignalConfig(
        calibration="platt", n_splits=3
    )
    with pytest.raises(SignalError, match="signal.calibration"):
        SignalConfig.from_params({"calibration": "beta"})
    with pytest.raises(SignalError, match="unknown keys"):
        SignalConfig.from_params({"nope": 1})
    c = SignalConfig(seed=9)
    assert SignalConfig.from_params(c.to_params()) == c


# ---- calibration against the truth ----------------------------------------------------------


@pytest.mark.parametrize("calibration", ["isotonic", "platt"])
def test_calibrated_oos_beats_base_rate(data: pl.DataFrame, fitted_isotonic: FittedSignal, calibration: str) -> None:
    fitted = (
        fitted_isotonic if calibration == "isotonic" else fit_signal(data, FEATURES, FAST.replace(calibration="platt"))
    )
    m = fitted.metrics()
    print(calibration, {k: round(v, 4) for k, v in m.items() if isinstance(v, float)})
    assert m["ece_calibrated"] < 0.03
    assert m["log_loss_calibrated"] < m["log_loss_base_rate"] - 0.05
    assert m["brier_calibrated"] < m["brier_base_rate"]
    assert m["n_oos"] == fitted.oos.height > 0.7 * data.height
    # the truth's own ECE on the same rows is the noise floor of the ECE estimate
    oos = fitted.oos.join(data.select("symbol", "trade_date", "p_true"), on=["symbol", "trade_date"])
    truth_ece = expected_calibration_error(oos["p_true"].to_numpy(), oos["up_1d"].cast(pl.Float64).to_numpy())
    print(calibration, "truth ECE", round(truth_ece, 4))
    table = m["reliability_calibrated"]
    assert sum(r["count"] for r in table) == m["n_oos"]
    assert {"bin", "mean_predicted", "observed_frequency", "count"} <= set(table[0])
    p = fitted.predict_proba(data)
    assert p.len() == data.height and p.is_between(0, 1).all()


# ---- no lookahead ---------------------------------------------------------------------------


def test_oos_predictions_ignore_future_rows() -> None:
    data = synthetic(n_dates=500, n_symbols=10, seed=11)
    config = FAST.replace(n_splits=3, min_child_samples=50, n_estimators=50)
    base = fit_signal(data, FEATURES, config)
    fold1_end = dt.date.fromisoformat(base.metrics()["folds"][1]["test_end"])
    rng = np.random.default_rng(0)
    future = pl.col("trade_date") > fold1_end
    altered = data.with_columns(
        pl.when(future).then(pl.lit(rng.standard_normal(data.height))).otherwise(pl.col("x1")).alias("x1"),
        pl.when(future).then(1 - pl.col("up_1d")).otherwise(pl.col("up_1d")).alias("up_1d"),
    )
    changed = fit_signal(altered, FEATURES, config)
    cols = ["symbol", "trade_date", "p_calibrated", "p_raw", "p_logistic", "p_base_rate"]
    before = base.oos.filter(pl.col("fold") <= 1).select(cols)
    after = changed.oos.filter(pl.col("fold") <= 1).select(cols)
    assert before.height > 0 and before.equals(after)
    assert not base.oos.filter(pl.col("fold") == 2).equals(changed.oos.filter(pl.col("fold") == 2))


# ---- persistence ----------------------------------------------------------------------------


@pytest.mark.parametrize("calibration", ["isotonic", "platt"])
def test_save_load_round_trip(tmp_path, data: pl.DataFrame, fitted_isotonic: FittedSignal, calibration: str) -> None:
    small = data.head(6000)
    fitted = (
        fitted_isotonic
        if calibration == "isotonic"
        else fit_signal(small, FEATURES, FAST.replace(calibration="platt", n_splits=2, n_estimators=30))
    )
    path = fitted.save_artifact(tmp_path)
    loaded = FittedSignal.load(path)
    assert loaded.predict_proba(data).equals(fitted.predict_proba(data))
    assert loaded.predict_baseline(data).equals(fitted.predict_baseline(data))
    assert loaded.metrics() == fitted.metrics()
    assert loaded.config == fitted.config and loaded.calibration == fitted.calibration
    assert fitted.save_artifact(tmp_path) == path  # same fit -> same content hash


def test_sample_weight_is_validated(data: pl.DataFrame) -> None:
    with pytest.raises(SignalError, match="sample_weight"):
        fit_signal(data, FEATURES, FAST, sample_weight=np.ones(3))


# ---- Thompson sampling ----------------------------------------------------------------------


def _simulate(seed: int, days: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    allocator = ThompsonAllocator(["momentum", "mean_reversion", "ml"], seed=5)
    history = []
    for _ in range(days):
        allocator.update(
            {
                "momentum": rng.random(20) < 0.6,
                "mean_reversion": rng.random(20) < 0.5,
                "ml": rng.random(20) < 0.5,
            }
        )
        history.append(allocator.weights(2000))
    return history


def test_thompson_concentrates_on_the_better_strategy() -> None:
    history = _simulate(seed=1, days=100)
    assert history[-1]["momentum"] > 0.95
    assert history[-1]["momentum"] >= history[0]["momentum"]
    assert abs(sum(history[-1].values()) - 1) < 1e-12


def test_thompson_is_reproducible() -> None:
    assert _simulate(seed=2, days=30) == _simulate(seed=2, days=30)
    a = ThompsonAllocator(["a", "b"], seed=1)
    assert a.weights() == a.weights()  # a pure function of the state
    b = ThompsonAllocator(["a", "b"], seed=2)
    assert a.weights() != b.weights()
    with pytest.raises(SignalError):
        a.update({"c": True})


def test_strategy_signals_outcomes_and_ensemble() -> None:
    frame = pl.DataFrame({"momentum_60_5": [0.2, -0.1, 0.0], "reversal_5d": [-0.3, 0.4, 0.1]})
    signals = strategy_signals(frame, [0.7, 0.4, 0.5])
    assert signals["momentum"].to_list() == [1, -1, 0]
    assert signals["mean_reversion"].to_list() == [-1, 1, 1]
    assert np.allclose(signals["ml"].to_numpy(), [0.2, -0.1, 0.0])
    outcomes = strategy_outcomes(signals, [0.01, 0.02, -0.01])
    assert outcomes["momentum"].tolist() == [True, False]  # the flat row is no trial
    assert outcomes["mean_reversion"].tolist() == [False, True, False]
    assert outcomes["ml"].tolist() == [True, False]
    positions = ensemble_positions(signals, {"momentum": 0.5, "mean_reversion": 0.25, "ml": 0.25})
    assert np.allclose(positions, [0.5 - 0.25 + 0.05, -0.5 + 0.25 - 0.025, 0.25])


# ---- published probability: candidate choice, payoff ratio, training rows, the ensemble ------------


def test_candidate_is_the_lowest_oos_log_loss_and_ties_go_to_the_simpler() -> None:
    metrics = {"log_loss_base_rate": 0.6931, "log_loss_logistic": 0.6920, "log_loss_calibrated": 0.6925}
    assert select_candidate(metrics) == "logistic"
    assert select_candidate({**metrics, "log_loss_logistic": 0.6931, "log_loss_calibrated": 0.6931}) == "base_rate"


def test_payoff_ratio_by_hand() -> None:
    # simple returns +10%, -5%, +2%, -1%: mean gain 6%, mean loss 3% -> b = 2
    assert payoff_ratio(np.log1p([0.10, -0.05, 0.02, -0.01])) == pytest.approx(2.0)
    assert payoff_ratio(np.log1p([0.01, 0.02])) == 1.0  # no losses: no ratio to estimate


def test_training_frame_drops_each_symbols_last_rows() -> None:
    days = _dates(4)
    features = pl.DataFrame({"symbol": ["A"] * 4 + ["B"] * 3, "trade_date": days + days[:3], "x1": range(7)})
    labels = features.select("symbol", "trade_date").with_columns(up_1d=pl.lit(1), fwd_ret_1d=pl.lit(0.01))
    labels = labels.with_columns(up_1d=pl.when(pl.col("trade_date") == days[1]).then(None).otherwise(pl.col("up_1d")))
    out = training_frame(features, labels)
    # A keeps days 0 and 2 (day 1 has no label, day 3 is its last); B keeps day 0 only.
    assert out.select("symbol", "trade_date").rows() == [("A", days[0]), ("A", days[2]), ("B", days[0])]


def _strategy_frame(n_dates: int = 400, n_symbols: int = 10, hit: float = 0.7, seed: int = 5) -> pl.DataFrame:
    """Momentum is right with probability ``hit``; mean reversion and ml are coin flips."""
    rng = np.random.default_rng(seed)
    n = n_dates * n_symbols
    momentum = rng.choice([-1.0, 1.0], n)
    direction = np.where(rng.random(n) < hit, momentum, -momentum)
    ret = direction * np.abs(rng.normal(0, 0.01, n))
    dates = pl.Series(np.repeat(np.array(_dates(n_dates), dtype="datetime64[D]"), n_symbols)).cast(pl.Date)
    return pl.DataFrame(
        {
            "trade_date": dates,
            "momentum_60_5": momentum,
            "reversal_5d": rng.choice([-1.0, 1.0], n),
            "p_ml": 0.5 + rng.uniform(-0.1, 0.1, n),
            "fwd_ret_1d": ret,
            "up_1d": (ret > 0).astype(np.int64),
        }
    )


def test_ensemble_learns_the_better_strategy_and_uses_only_past_outcomes() -> None:
    frame = _strategy_frame()
    ensemble, scores, p = fit_ensemble(frame, "p_ml", seed=1)
    assert ensemble.weights["momentum"] > 0.99
    assert ensemble.hit_rates["momentum"] == pytest.approx(0.7, abs=0.02)  # 4,000 trials: SE 0.007
    # Momentum-up rows get P(up) ~ 0.7: log-loss near the Bernoulli(0.7) entropy 0.611, far below 0.693.
    assert scores["log_loss_ensemble"] < 0.63
    # Flip every outcome after date 200: the probabilities up to and including date 200 do not move.
    cut = frame["trade_date"].unique().sort()[200]
    later = pl.col("trade_date") > cut
    flipped = frame.with_columns(
        fwd_ret_1d=pl.when(later).then(-pl.col("fwd_ret_1d")).otherwise(pl.col("fwd_ret_1d")),
        up_1d=pl.when(later).then(1 - pl.col("up_1d")).otherwise(pl.col("up_1d")),
    )
    _, _, p_flipped = fit_ensemble(flipped, "p_ml", seed=1)
    head = (frame["trade_date"] <= cut).to_numpy()
    assert np.array_equal(p[head], p_flipped[head])
    assert not np.array_equal(p[~head], p_flipped[~head])
    # The live ensemble's probability follows its rule: 0.5 + sign(momentum) (hit - 0.5) at weight ~1.
    live = ensemble.probability(frame.head(4), frame["p_ml"].head(4))
    expected = 0.5 + np.sign(frame["momentum_60_5"].head(4).to_numpy()) * (ensemble.hit_rates["momentum"] - 0.5)
    assert np.allclose(live, expected, atol=0.01)
