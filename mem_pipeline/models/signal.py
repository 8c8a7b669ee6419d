"""Direction signal: calibrated P(up tomorrow) from daily features, scored walk-forward; the published
probability is the best candidate or the Thompson-weighted strategy ensemble built on it (``ensemble``).

Column names and ``SignalError`` are in ``signal_columns``, the scores in ``scoring``, the strategies and
the Thompson allocator in ``strategies``; this module imports them, so they can still be imported from it.

Input: one frame with ``symbol``, ``trade_date``, the feature columns and — for fitting and scoring
only — the labels ``up_1d`` (0/1) and ``fwd_ret_1d``. Prediction needs only the feature columns.

Walk-forward (``walk_forward_splits``): the sorted unique trade dates are cut into ``n_splits + 1``
contiguous blocks; fold ``k`` tests on block ``k + 1`` and trains on the dates strictly before it
(expanding window), minus

* the **purge** — the ``horizon_days`` dates just before the test start, whose label window
  ``t .. t + horizon_days`` (in trading dates) reaches into the test block, and
* the **embargo** — the ``embargo_days`` dates just before the purged ones.

So the last train date is ``horizon_days + embargo_days`` trading dates before the test start.

Per fold: a LightGBM classifier is fitted on the train dates except a time-ordered calibration tail
(the last ``calibration_fraction`` of train dates, itself separated from the fit part by a purge of
``horizon_days`` dates); the calibration map (isotonic, or Platt = 1-D logistic regression on the raw
log-odds) is fitted on that tail's raw probabilities. A logistic-regression baseline (standardized
features, sklearn) and the base rate (train mean of ``up_1d``) are fitted on all train dates. Every
model predicts the test block; the OOS predictions of all folds are the metrics' input. The final
(live) model is refitted the same way on all dates.

Calibration maps are plain arrays (isotonic: thresholds ``x``, ``y`` applied with ``np.interp``,
clipped at the ends; Platt: ``a``, ``b`` in ``sigmoid(a * raw_score + b)``), so a saved model predicts
the same probabilities as the in-memory one.

Determinism: LightGBM with ``deterministic``, ``force_row_wise``, one thread and a fixed seed; the
Thompson allocator draws from a generator seeded by ``(seed, number of updates)`` (see ``strategies``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import polars as pl
from numpy.typing import NDArray

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.models.artifacts import check_header, read_json, save_artifact, save_png, write_json
from mem_pipeline.models.ensemble import Ensemble, fit_ensemble
from mem_pipeline.models.gbm import NUM_THREADS, reproducible_params

# The ``X as X`` imports are not used here: they keep ``from mem_pipeline.models.signal import X`` working.
from mem_pipeline.models.scoring import EPS as EPS
from mem_pipeline.models.scoring import N_BINS as N_BINS
from mem_pipeline.models.scoring import brier, expected_calibration_error, log_loss, reliability_table
from mem_pipeline.models.signal_columns import (
    DATE,
    KNOWN_DATE,
    LABEL,
    RETURN,
    STRATEGY_FEATURES,
    SYMBOL,
    SignalError,
    TooLittleHistory,
    require_columns,
)
from mem_pipeline.models.strategies import STRATEGIES as STRATEGIES
from mem_pipeline.models.strategies import ThompsonAllocator as ThompsonAllocator
from mem_pipeline.models.strategies import ensemble_positions as ensemble_positions
from mem_pipeline.models.strategies import strategy_outcomes as strategy_outcomes
from mem_pipeline.models.strategies import strategy_signals as strategy_signals

FloatArray = NDArray[np.float64]

CALIBRATIONS = ("isotonic", "platt")
#: Published-probability candidates, simplest first (the tie-break order of ``select_candidate``).
CANDIDATES = ("base_rate", "logistic", "calibrated")
KIND = "signal"
FORMAT_VERSION = 2
MODEL_FILE = "lightgbm.txt"
META_FILE = "signal.json"
OOS_FILE = "oos.parquet"  # the walk-forward predictions behind the metrics (the decision memory reads them)
#: Isotonic outputs are kept in [floor, 1 - floor]: an end plateau fitted on a few calibration rows
#: would otherwise predict exactly 0 or 1, and one contrary outcome costs log(1/EPS) in log-loss.
ISOTONIC_FLOOR = 1e-3
Z_CLIP = 5.0  # the logistic baseline's winsorization of standardized features
MIN_FIT_ROWS = 100  # rows a train window's LightGBM part needs at the least


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalConfig(ParamsConfig):
    """What determines a signal fit (``models.signal`` in params shape)."""

    SECTION: ClassVar[str] = "models.signal"
    ERROR: ClassVar[type[Exception]] = SignalError

    n_splits: int = 5
    embargo_days: int = 5
    horizon_days: int = 1
    calibration: str = "platt"
    calibration_fraction: float = 0.2  # share of each train window's dates (the latest) for calibration
    logistic_c: float = 1.0  # inverse L2 strength of the logistic baseline
    n_estimators: int = 100
    learning_rate: float = 0.02
    num_leaves: int = 7
    min_child_samples: int = 500
    seed: int = 42

    def __post_init__(self) -> None:
        if self.n_splits < 1:
            _fail("n_splits", f"must be >= 1, got {self.n_splits}")
        if self.embargo_days < 0:
            _fail("embargo_days", f"must be >= 0, got {self.embargo_days}")
        if self.horizon_days < 0:
            _fail("horizon_days", f"must be >= 0, got {self.horizon_days}")
        if self.calibration not in CALIBRATIONS:
            _fail("calibration", f"must be one of {list(CALIBRATIONS)}, got {self.calibration!r}")
        if not 0 < self.calibration_fraction < 1:
            _fail("calibration_fraction", f"must be in (0, 1), got {self.calibration_fraction}")
        if not (math.isfinite(self.logistic_c) and self.logistic_c > 0):
            _fail("logistic_c", f"must be a positive number, got {self.logistic_c}")
        if self.n_estimators < 1:
            _fail("n_estimators", f"must be >= 1, got {self.n_estimators}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            _fail("learning_rate", f"must be a positive number, got {self.learning_rate}")
        if self.num_leaves < 2:
            _fail("num_leaves", f"must be >= 2, got {self.num_leaves}")
        if self.min_child_samples < 1:
            _fail("min_child_samples", f"must be >= 1, got {self.min_child_samples}")

    def to_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> SignalConfig:
        return dataclasses.replace(self, **changes)

    def lgb_params(self) -> dict[str, Any]:
        return reproducible_params(
            "binary",
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            seed=self.seed,
        )


def _fail(key: str, detail: str) -> None:
    raise SignalError(f"signal.{key}: {detail}")


# --------------------------------------------------------------------------------------------
# Walk-forward splits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold, as sorted arrays of trade dates (disjoint; together all dates up to test end)."""

    train: np.ndarray
    purged: np.ndarray
    embargoed: np.ndarray
    test: np.ndarray


def walk_forward_splits(dates: Iterable[Any], n_splits: int, horizon_days: int, embargo_days: int) -> list[Fold]:
    """Expanding-window folds over the unique values of ``dates`` (see the module docstring).

    Raises ``SignalError`` when a fold would have no train date.
    """
    unique = np.unique(np.asarray(list(dates) if not isinstance(dates, np.ndarray | pl.Series) else dates))
    n = len(unique)
    if n_splits < 1 or horizon_days < 0 or embargo_days < 0:
        raise SignalError("walk_forward_splits: needs n_splits >= 1, horizon_days >= 0, embargo_days >= 0")
    bounds = [round(i * n / (n_splits + 1)) for i in range(n_splits + 2)]
    folds = []
    for k in range(1, n_splits + 1):
        start, end = bounds[k], bounds[k + 1]
        purge_start = max(0, start - horizon_days)
        train_end = max(0, purge_start - embargo_days)
        if train_end < 1 or end <= start:
            raise TooLittleHistory(
                f"walk_forward_splits: {n} dates are too few for {n_splits} folds with horizon {horizon_days} "
                f"and embargo {embargo_days} (fold {k} has no train or test date)"
            )
        folds.append(
            Fold(
                train=unique[:train_end],
                purged=unique[purge_start:start],
                embargoed=unique[train_end:purge_start],
                test=unique[start:end],
            )
        )
    return folds


# --------------------------------------------------------------------------------------------
# Calibration, logistic baseline, metrics
# --------------------------------------------------------------------------------------------


def _sigmoid(z: FloatArray) -> FloatArray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class Calibration:
    """A map from LightGBM's raw log-odds to a probability: isotonic (on the raw probability) or Platt."""

    kind: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    def apply(self, raw_score: FloatArray) -> FloatArray:
        if self.kind == "platt":
            return _sigmoid(self.a * raw_score + self.b)
        return np.interp(_sigmoid(raw_score), np.asarray(self.x), np.asarray(self.y))

    def to_json(self) -> dict[str, Any]:
        if self.kind == "platt":
            return {"kind": "platt", "a": self.a, "b": self.b}
        return {"kind": "isotonic", "x_thresholds": list(self.x), "y_thresholds": list(self.y)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Calibration:
        if d["kind"] == "platt":
            return cls("platt", a=float(d["a"]), b=float(d["b"]))
        return cls("isotonic", x=tuple(map(float, d["x_thresholds"])), y=tuple(map(float, d["y_thresholds"])))


def fit_calibration(kind: str, raw_score: FloatArray, y: FloatArray, weight: FloatArray | None = None) -> Calibration:
    """Isotonic (``IsotonicRegression`` on the raw probability, clipped, outputs in
    ``[ISOTONIC_FLOOR, 1 - ISOTONIC_FLOOR]``) or Platt (weighted 1-D logistic fit by Newton's method)."""
    w = np.ones_like(y) if weight is None else weight
    if kind == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=ISOTONIC_FLOOR, y_max=1.0 - ISOTONIC_FLOOR, out_of_bounds="clip")
        iso.fit(_sigmoid(raw_score), y, sample_weight=w)
        return Calibration("isotonic", x=tuple(map(float, iso.X_thresholds_)), y=tuple(map(float, iso.y_thresholds_)))
    if kind == "platt":
        a, b = _platt(raw_score, y, w)
        return Calibration("platt", a=a, b=b)
    raise SignalError(f"fit_calibration: unknown calibration {kind!r}")


def _platt(s: FloatArray, y: FloatArray, w: FloatArray, ridge: float = 1e-8) -> tuple[float, float]:
    """Weighted 1-D logistic regression ``y ~ sigmoid(a s + b)`` by damped Newton steps."""
    theta = np.array([1.0, 0.0])
    x = np.column_stack([s, np.ones_like(s)])
    for _ in range(100):
        p = _sigmoid(x @ theta)
        grad = x.T @ (w * (p - y))
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(theta[0]), float(theta[1])


@dataclass(frozen=True)
class LogisticBaseline:
    """Standardized-feature logistic regression, stored as arrays (predicts without sklearn).

    Missing feature values (NaN: a window not yet full, a feature the source cannot give) are imputed
    with the train mean, i.e. z = 0, and z-scores are winsorized at ``±Z_CLIP`` (fat-tailed features such
    as Amihud illiquidity would otherwise saturate the sigmoid), in fitting and prediction alike."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def predict_proba(self, x: FloatArray) -> FloatArray:
        return _sigmoid(
            _standardize(x, np.asarray(self.mean), np.asarray(self.scale)) @ np.asarray(self.coef) + self.intercept
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LogisticBaseline:
        return cls(
            tuple(map(float, d["mean"])),
            tuple(map(float, d["scale"])),
            tuple(map(float, d["coef"])),
            float(d["intercept"]),
        )


def _standardize(x: FloatArray, mean: FloatArray, scale: FloatArray) -> FloatArray:
    z = np.nan_to_num((x - mean) / scale, nan=0.0, posinf=Z_CLIP, neginf=-Z_CLIP)
    return np.clip(z, -Z_CLIP, Z_CLIP)


def fit_logistic(x: FloatArray, y: FloatArray, c: float, weight: FloatArray | None = None) -> LogisticBaseline:
    from sklearn.linear_model import LogisticRegression

    x = np.where(np.isfinite(x), x, np.nan)
    observed = np.isfinite(x).any(axis=0)
    mean = np.zeros(x.shape[1])
    scale = np.ones(x.shape[1])
    if x.shape[0]:
        mean[observed] = np.nanmean(x[:, observed], axis=0)
        spread = np.nanstd(x[:, observed], axis=0)
        scale[observed] = np.where(spread > 0, spread, 1.0)
    model = LogisticRegression(C=c, max_iter=1000, solver="newton-cholesky")  # exact Newton: few features, many rows
    model.fit(_standardize(x, mean, scale), y, sample_weight=weight)
    return LogisticBaseline(
        tuple(map(float, mean)), tuple(map(float, scale)), tuple(map(float, model.coef_[0])), float(model.intercept_[0])
    )


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


def feature_matrix(frame: pl.DataFrame, columns: Sequence[str], where: str) -> FloatArray:
    """Feature matrix (nulls become NaN, which LightGBM handles; the baseline imputes them).

    Values are rounded to float32 precision: DuckDB's parallel window sums can differ in the last bits of a
    float64 between two builds of the same rows (e.g. a lake truncated at ``t`` and a longer one), and a fit
    must not depend on that noise, or the same data would not give the same artifact hash."""
    require_columns(frame, columns, where)
    try:
        x = frame.select([pl.col(c).cast(pl.Float32).cast(pl.Float64) for c in columns]).to_numpy()
    except Exception as exc:
        raise SignalError(f"{where}: feature columns must be numeric") from exc
    return np.ascontiguousarray(x, dtype=np.float64).reshape(frame.height, len(columns))


def _labels(frame: pl.DataFrame, where: str) -> FloatArray:
    require_columns(frame, [LABEL], where)
    series = frame[LABEL]
    if series.null_count():
        raise SignalError(f"{where}: column {LABEL!r} has {series.null_count()} nulls")
    y = series.cast(pl.Float64).to_numpy()
    if not np.isin(y, (0.0, 1.0)).all():
        raise SignalError(f"{where}: column {LABEL!r} must be 0 or 1")
    return np.ascontiguousarray(y)


# --------------------------------------------------------------------------------------------
# The fitted model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FittedSignal:
    """The live model (LightGBM + calibration), the logistic baseline, the base rate and OOS metrics.

    ``oos`` holds the walk-forward OOS predictions of the fit (saved beside the model as ``oos.parquet``).
    """

    config: SignalConfig
    feature_columns: tuple[str, ...]
    booster: lgb.Booster
    calibration: Calibration
    logistic: LogisticBaseline
    base_rate: float
    fit_metrics: dict[str, Any]
    selected: str = "calibrated"
    published: str = "calibrated"
    payoff_ratio: float = 1.0
    ensemble: dict[str, Any] | None = None
    oos: pl.DataFrame | None = None

    def raw_score(self, frame: pl.DataFrame) -> FloatArray:
        x = feature_matrix(frame, self.feature_columns, "predict")
        if x.shape[0] == 0:
            return np.empty(0)
        return np.asarray(self.booster.predict(x, raw_score=True, num_threads=NUM_THREADS), dtype=np.float64)

    def predict_proba(self, frame: pl.DataFrame) -> pl.Series:
        """Calibrated P(up_1d = 1), one per row in input order (``p_up``)."""
        return pl.Series("p_up", self.calibration.apply(self.raw_score(frame)), dtype=pl.Float64())

    def predict_raw(self, frame: pl.DataFrame) -> pl.Series:
        return pl.Series("p_up_raw", _sigmoid(self.raw_score(frame)), dtype=pl.Float64())

    def predict_baseline(self, frame: pl.DataFrame) -> pl.Series:
        x = feature_matrix(frame, self.feature_columns, "predict_baseline")
        return pl.Series("p_up_logistic", self.logistic.predict_proba(x), dtype=pl.Float64())

    def predict_selected(self, frame: pl.DataFrame) -> pl.Series:
        """P(up) from the candidate chosen by walk-forward log-loss (``selected``), one per row."""
        if self.selected == "calibrated":
            return self.predict_proba(frame)
        if self.selected == "logistic":
            return self.predict_baseline(frame).rename("p_up")
        return pl.Series("p_up", np.full(frame.height, self.base_rate), dtype=pl.Float64())

    def predict_signal(self, frame: pl.DataFrame, *, calibrated: bool = True, ensemble: bool = True) -> pl.Series:
        """The published P(up) (``published``: the selected candidate, or the ensemble built on it when
        that scored better out of sample), one per row; the ensemble needs the strategy feature columns.

        The backtest's ablations: ``calibrated=False`` puts the raw LightGBM probability where the selected
        candidate goes; ``ensemble=False`` publishes that candidate without the Thompson-weighted ensemble."""
        p = self.predict_selected(frame) if calibrated else self.predict_raw(frame).rename("p_up")
        if self.published != "ensemble" or not ensemble:
            return p
        return pl.Series("p_up", Ensemble.from_json(self.ensemble or {}).probability(frame, p.to_numpy()))

    def metrics(self) -> dict[str, Any]:
        return dict(self.fit_metrics)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / MODEL_FILE))
        write_json(
            directory / META_FILE,
            {
                "format_version": FORMAT_VERSION,
                "kind": KIND,
                "config": self.config.to_params(),
                "features": list(self.feature_columns),
                "calibration": self.calibration.to_json(),
                "logistic": self.logistic.to_json(),
                "base_rate": self.base_rate,
                "selected": self.selected,
                "published": self.published,
                "payoff_ratio": self.payoff_ratio,
                "ensemble": self.ensemble,
                "metrics": self.fit_metrics,
                "lightgbm_version": lgb.__version__,
            },
        )
        if self.oos is not None:
            self.oos.write_parquet(directory / OOS_FILE)

    @classmethod
    def load(cls, directory: Path) -> FittedSignal:
        directory = Path(directory)
        meta = read_json(directory / META_FILE)
        check_header(meta, kind=KIND, format_version=FORMAT_VERSION, error=SignalError, where=str(directory))
        return cls(
            config=SignalConfig.from_params(meta["config"]),
            feature_columns=tuple(meta["features"]),
            booster=lgb.Booster(model_file=str(directory / MODEL_FILE)),
            calibration=Calibration.from_json(meta["calibration"]),
            logistic=LogisticBaseline.from_json(meta["logistic"]),
            base_rate=float(meta["base_rate"]),
            fit_metrics=dict(meta["metrics"]),
            selected=str(meta["selected"]),
            published=str(meta["published"]),
            payoff_ratio=float(meta["payoff_ratio"]),
            ensemble=meta["ensemble"],
            oos=pl.read_parquet(directory / OOS_FILE) if (directory / OOS_FILE).exists() else None,
        )

    def save_artifact(self, root: Path, name: str = KIND) -> Path:
        return save_artifact(Path(root), name, self.save)


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Models:
    booster: lgb.Booster
    calibration: Calibration
    logistic: LogisticBaseline
    base_rate: float
    n_fit: int
    n_calib: int


def _fit_window(
    x: FloatArray,
    y: FloatArray,
    w: FloatArray | None,
    row_dates: np.ndarray,
    train_dates: np.ndarray,
    feature_columns: Sequence[str],
    config: SignalConfig,
) -> _Models:
    """Fit LightGBM on the head of ``train_dates``, calibrate on the tail, the baseline on all of them."""
    n_dates = len(train_dates)
    n_calib = max(1, round(config.calibration_fraction * n_dates))
    fit_end = n_dates - n_calib - config.horizon_days  # purge the fit part's labels that reach the tail
    if fit_end < 1:
        raise TooLittleHistory(f"fit_signal: a train window of {n_dates} dates is too short to hold a calibration tail")
    in_train = np.isin(row_dates, train_dates)
    fit_rows = np.isin(row_dates, train_dates[:fit_end])
    calib_rows = np.isin(row_dates, train_dates[n_dates - n_calib :])
    n_fit = int(fit_rows.sum())
    if n_fit < MIN_FIT_ROWS:
        raise TooLittleHistory(f"fit_signal: {n_fit} fit rows in a train window, fewer than {MIN_FIT_ROWS}")
    # Early folds of an unbalanced panel (a few long histories, a wide recent cross-section) can be small:
    # a leaf never needs more than a tenth of the fit rows.
    params = {**config.lgb_params(), "min_child_samples": min(config.min_child_samples, n_fit // 10)}
    weight = None if w is None else w[fit_rows]
    data = lgb.Dataset(
        x[fit_rows], label=y[fit_rows], weight=weight, feature_name=list(feature_columns), params={"verbosity": -1}
    )
    booster = lgb.train(params, data, num_boost_round=config.n_estimators)
    raw = np.asarray(booster.predict(x[calib_rows], raw_score=True, num_threads=NUM_THREADS), dtype=np.float64)
    calibration = fit_calibration(config.calibration, raw, y[calib_rows], None if w is None else w[calib_rows])
    logistic = fit_logistic(x[in_train], y[in_train], config.logistic_c, None if w is None else w[in_train])
    base_rate = float(np.average(y[in_train], weights=None if w is None else w[in_train]))
    return _Models(booster, calibration, logistic, base_rate, int(fit_rows.sum()), int(calib_rows.sum()))


def _predict_all(models: _Models, x: FloatArray) -> dict[str, FloatArray]:
    raw = np.asarray(models.booster.predict(x, raw_score=True, num_threads=NUM_THREADS), dtype=np.float64)
    return {
        "p_calibrated": models.calibration.apply(raw),
        "p_raw": _sigmoid(raw),
        "p_logistic": models.logistic.predict_proba(x),
        "p_base_rate": np.full(x.shape[0], models.base_rate),
    }


def score_predictions(oos: pl.DataFrame) -> dict[str, Any]:
    """Log-loss, Brier and ECE of every prediction column of ``oos`` against ``up_1d``, and the reliability
    table of the calibrated one."""
    y = oos[LABEL].cast(pl.Float64).to_numpy()
    out: dict[str, Any] = {"n_oos": int(oos.height), "oos_up_rate": float(y.mean())}
    for column in ("p_calibrated", "p_raw", "p_logistic", "p_base_rate"):
        name = column.removeprefix("p_")
        p = oos[column].to_numpy()
        out[f"log_loss_{name}"] = log_loss(p, y)
        out[f"brier_{name}"] = brier(p, y)
        out[f"ece_{name}"] = expected_calibration_error(p, y)
    out["reliability_calibrated"] = reliability_table(oos["p_calibrated"].to_numpy(), y)
    return out


def fit_signal(
    frame: pl.DataFrame,
    feature_columns: Sequence[str],
    config: SignalConfig | None = None,
    sample_weight: Sequence[float] | np.ndarray | pl.Series | None = None,
) -> FittedSignal:
    """Walk-forward OOS predictions and metrics, then the live model refitted on all dates.

    ``frame`` needs ``symbol``, ``trade_date``, ``up_1d`` and ``feature_columns``; ``sample_weight`` is
    one non-negative weight per row (for LightGBM, calibration, the baseline and the base rate).
    """
    config = config or SignalConfig()
    where = "fit_signal"
    feature_columns = tuple(feature_columns)
    if not feature_columns:
        raise SignalError(f"{where}: needs at least one feature column")
    require_columns(frame, [SYMBOL, DATE, LABEL, *feature_columns], where)
    if frame[DATE].null_count():
        raise SignalError(f"{where}: column {DATE!r} has {frame[DATE].null_count()} nulls")
    x = feature_matrix(frame, feature_columns, where)
    y = _labels(frame, where)
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (frame.height,) or not np.isfinite(w).all() or (w < 0).any():
            raise SignalError(f"{where}: sample_weight needs {frame.height} finite non-negative values")
    row_dates = frame[DATE].to_numpy()
    folds = walk_forward_splits(row_dates, config.n_splits, config.horizon_days, config.embargo_days)

    parts = []
    fold_info = []
    for k, fold in enumerate(folds):
        models = _fit_window(x, y, w, row_dates, fold.train, feature_columns, config)
        test_rows = np.flatnonzero(np.isin(row_dates, fold.test))
        preds = _predict_all(models, x[test_rows])
        parts.append(
            pl.DataFrame({"row": test_rows, "fold": np.full(len(test_rows), k), **preds}).with_columns(
                pl.col("row").cast(pl.Int64), pl.col("fold").cast(pl.Int64)
            )
        )
        fold_info.append(
            {
                "fold": k,
                "train_start": str(fold.train[0]),
                "train_end": str(fold.train[-1]),
                "test_start": str(fold.test[0]),
                "test_end": str(fold.test[-1]),
                "n_fit": models.n_fit,
                "n_calib": models.n_calib,
                "n_test": len(test_rows),
                "log_loss_calibrated": log_loss(preds["p_calibrated"], y[test_rows]),
                "log_loss_base_rate": log_loss(preds["p_base_rate"], y[test_rows]),
            }
        )
    oos_preds = pl.concat(parts)
    keep = [c for c in (SYMBOL, DATE, LABEL, RETURN, KNOWN_DATE, *STRATEGY_FEATURES) if c in frame.columns]
    oos = frame.select(keep)[oos_preds["row"].to_numpy()].hstack(oos_preds)

    final = _fit_window(x, y, w, row_dates, np.unique(row_dates), feature_columns, config)
    metrics = {**score_predictions(oos), "folds": fold_info, "n_rows": int(frame.height), "n_final_fit": final.n_fit}
    selected = select_candidate(metrics)
    metrics["selected"] = selected
    ensemble, published = None, selected
    if all(c in oos.columns for c in (RETURN, *STRATEGY_FEATURES)):
        oos = oos.sort(DATE, maintain_order=True)  # fit_ensemble's row order
        fitted_ensemble, scores, p_ensemble = fit_ensemble(oos, f"p_{selected}", seed=config.seed)
        oos = oos.with_columns(pl.Series("p_ensemble", p_ensemble))
        ensemble = fitted_ensemble.to_json()
        metrics.update({k: v for k, v in scores.items() if k.startswith(("log_loss", "ece"))})
        if scores["log_loss_ensemble"] < metrics[f"log_loss_{selected}"]:
            published = "ensemble"
    metrics["published"] = published
    payoff = payoff_ratio(frame[RETURN].to_numpy()) if RETURN in frame.columns else 1.0
    return FittedSignal(
        config=config,
        feature_columns=feature_columns,
        booster=final.booster,
        calibration=final.calibration,
        logistic=final.logistic,
        base_rate=final.base_rate,
        fit_metrics=metrics,
        selected=selected,
        published=published,
        payoff_ratio=payoff,
        ensemble=ensemble,
        oos=oos,
    )


def select_candidate(metrics: Mapping[str, Any]) -> str:
    """The candidate with the lowest walk-forward log-loss; on a tie the simpler one (base rate first).

    A model that does not beat the base rate out of sample is not traded: the base rate is a candidate."""
    return min(CANDIDATES, key=lambda c: (metrics[f"log_loss_{c}"], CANDIDATES.index(c)))


def payoff_ratio(forward_returns: np.ndarray) -> float:
    """Kelly's ``b``: mean gain of up moves over mean loss of down moves (simple returns)."""
    r = np.expm1(np.asarray(forward_returns, dtype=np.float64))
    r = r[np.isfinite(r)]
    gains, losses = r[r > 0], -r[r < 0]
    if not len(gains) or not len(losses):
        return 1.0
    return float(gains.mean() / losses.mean())


def training_frame(features: pl.DataFrame, labels: pl.DataFrame, horizon_days: int = 1) -> pl.DataFrame:
    """Features joined with the labels known by the last date present: each symbol's last ``horizon_days``
    rows are dropped, because their label reads a bar after that date (a refit as of ``t`` reads rows
    ``<= t``; the outcome of the row at ``t`` is not known at ``t``). ``known_date`` is the date of the
    bar the label reads: when the outcome became known."""
    label_columns = [LABEL, RETURN]
    joined = features.join(labels.select(SYMBOL, DATE, *label_columns), on=[SYMBOL, DATE], how="inner").sort(
        SYMBOL, DATE
    )
    position = pl.int_range(pl.len()).over(SYMBOL)
    known = pl.col(DATE).shift(-horizon_days).over(SYMBOL).alias(KNOWN_DATE)
    return joined.with_columns(known).filter(position < pl.len().over(SYMBOL) - horizon_days).drop_nulls(label_columns)


def load_signal(directory: Path) -> FittedSignal:
    return FittedSignal.load(directory)


def plot_reliability(oos: pl.DataFrame, p_column: str, path: Path) -> Path:
    """Reliability diagram of ``p_column`` against ``up_1d`` (bin mean prediction vs observed rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = oos[LABEL].cast(pl.Float64).to_numpy()
    table = pl.DataFrame(reliability_table(oos[p_column].to_numpy(), y)).filter(pl.col("count") > 0)
    fig, ax = plt.subplots(figsize=(5, 5))
    lo = float(min(table["mean_predicted"].min(), table["observed_frequency"].min())) - 0.02
    hi = float(max(table["mean_predicted"].max(), table["observed_frequency"].max())) + 0.02
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", label="perfect calibration")
    ax.scatter(table["mean_predicted"], table["observed_frequency"], s=20 + 200 * table["count"] / table["count"].max())
    ax.set_xlabel(f"predicted P(up) ({p_column})")
    ax.set_ylabel("observed up rate")
    ax.set_title(f"Reliability, ECE {expected_calibration_error(oos[p_column].to_numpy(), y):.4f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    try:
        return save_png(fig, path)
    finally:
        plt.close(fig)
