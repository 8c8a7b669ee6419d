"""Slippage model: expected cost and tail quantiles of a fill, in bps, from the order and the market.

Features of an order (``FEATURES``): ``size_over_adv`` (Q/ADV), ``spread_bps`` (quoted spread),
``sigma`` (daily volatility, a fraction), ``participation`` (Q / the day's volume; pre-trade, pass
the forecast) and ``side`` (+1 buy, -1 sell; "buy"/"sell" are accepted).

Models, all fitted on the train part of a time-ordered split:

* **Mean** — LightGBM regression, objective ``l2`` by default: the mean is the quantity that adds up
  across child orders and enters expected P&L, cost budgets and Almgren–Chriss's expected-cost term.
  ``l1`` estimates the median, which for right-skewed real-world costs lies below the mean and would
  bias budgets low (on the symmetric synthetic noise both do equally well; ``objective`` switches).
* **Quantiles** — one LightGBM ``quantile`` model per configured level (0.9 and 0.95 by default).
* **Baseline** — the square-root law ``cost = spread/2 + Y sigma_bps sqrt(Q/ADV)``; ``Y`` is the
  closed-form least-squares slope of ``realized - spread/2`` on ``x = sigma_bps sqrt(Q/ADV)``:
  ``Y = sum(x r) / sum(x^2)``.

Target: every LightGBM model learns ``y = (cost - spread/2) / sigma_bps``, the impact in units of
daily volatility, and predictions are mapped back per row with ``cost = spread/2 + sigma_bps * y``.
All features still enter, so the trees can learn any other dependence on spread or vol; the
normalisation only removes the two known scalings (the half-spread paid to cross, impact in
proportion to vol) that trees approximate poorly with steps and cannot extrapolate when the test
period's vol leaves the training range. The map is increasing and affine per row, so quantiles of
``y`` map exactly to quantiles of the cost.

Quantile crossing: independently fitted quantile models can cross. ``predict`` rearranges each row
(Chernozhukov, Fernández-Val & Galichon 2010): the quantile predictions are sorted ascending, then
floored at the row's expected cost, so ``p95 >= p90 >= expected`` always holds. The expected cost
itself is never moved (it is the l2 estimate that feeds budgets and the MAE). ``metrics()`` reports
the share of test rows the rearrangement changed.

Split: by date, not by row — the last ``test_fraction`` of the distinct dates is the test set, so no
test date precedes (or equals) a train date. No shuffling across time.

Determinism: ``deterministic=True``, ``force_row_wise=True``, one thread and a fixed seed; the same
fills (in the same row order) and config give byte-identical model files, hence the same artifact
hash. Models are saved in LightGBM's text format (``booster.save_model``) beside ``slippage.json``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import polars as pl
from numpy.typing import NDArray

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.errors import MemError
from mem_pipeline.core.schemas import SLIPPAGE_DATE, SLIPPAGE_FEATURES, SLIPPAGE_TARGET
from mem_pipeline.models.artifacts import check_header, read_json, save_artifact, save_png, write_json
from mem_pipeline.models.gbm import NUM_THREADS, reproducible_params

FloatArray = NDArray[np.float64]

FEATURES = SLIPPAGE_FEATURES
TARGET = SLIPPAGE_TARGET
TRUE_COST = "true_cost_bps"  # known only for simulated fills (the synthetic market's oracle)
DATE = SLIPPAGE_DATE
OBJECTIVES = ("l2", "l1")
FORMAT_VERSION = 1
KIND = "slippage"
MEAN_FILE = "mean.txt"
META_FILE = "slippage.json"
BPS = 1e4
#: LightGBM's result depends on the thread count; an artifact's hash must not depend on the machine.


class SlippageError(MemError, ValueError):
    """Bad slippage-model configuration or input (names the key or column and the rule broken)."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlippageConfig(ParamsConfig):
    """What determines a slippage fit (saved with every artifact; ``models.slippage`` in params shape).

    Defaults are small, strongly regularised trees (7 leaves, >= 200 fills a leaf): in vol units
    the impact is a smooth function of few inputs under heavy noise, and bigger trees chase the noise.
    """

    SECTION: ClassVar[str] = "models.slippage"
    ERROR: ClassVar[type[Exception]] = SlippageError

    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 7
    min_child_samples: int = 200
    seed: int = 42
    objective: str = "l2"
    quantiles: tuple[float, ...] = (0.9, 0.95)
    test_fraction: float = 0.25  # share of the distinct dates, the latest ones, held out for metrics

    def __post_init__(self) -> None:
        if self.n_estimators < 1:
            _fail("n_estimators", f"must be >= 1, got {self.n_estimators}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            _fail("learning_rate", f"must be a positive number, got {self.learning_rate}")
        if self.num_leaves < 2:
            _fail("num_leaves", f"must be >= 2, got {self.num_leaves}")
        if self.min_child_samples < 1:
            _fail("min_child_samples", f"must be >= 1, got {self.min_child_samples}")
        if self.objective not in OBJECTIVES:
            _fail("objective", f"must be one of {list(OBJECTIVES)}, got {self.objective!r}")
        if not self.quantiles:
            _fail("quantiles", "needs at least one level")
        for q in self.quantiles:
            if not 0.5 <= q < 1 or abs(q * 100 - round(q * 100)) > 1e-9:
                _fail("quantiles", f"levels must be whole percents in [0.5, 1), got {q}")
        if list(self.quantiles) != sorted(set(self.quantiles)):
            _fail("quantiles", f"must be strictly increasing, got {list(self.quantiles)}")
        if not 0 < self.test_fraction < 1:
            _fail("test_fraction", f"must be in (0, 1), got {self.test_fraction}")

    def to_params(self) -> dict[str, Any]:
        """The mapping ``from_params`` reads: ``SlippageConfig.from_params(c.to_params()) == c``."""
        params = dataclasses.asdict(self)
        params["quantiles"] = list(self.quantiles)
        return params

    def replace(self, **changes: Any) -> SlippageConfig:
        return dataclasses.replace(self, **changes)

    def lgb_params(self, objective: str, alpha: float | None = None) -> dict[str, Any]:
        """LightGBM parameters for one model (``objective`` "l2", "l1" or "quantile" with ``alpha``)."""
        return reproducible_params(
            objective,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            seed=self.seed,
            **({} if alpha is None else {"alpha": alpha}),
        )


def _fail(key: str, detail: str) -> None:
    raise SlippageError(f"slippage.{key}: {detail}")


def quantile_column(q: float) -> str:
    """``0.9 -> "p90_cost_bps"``."""
    return f"p{round(q * 100)}_cost_bps"


# --------------------------------------------------------------------------------------------
# Features, target, split, baseline
# --------------------------------------------------------------------------------------------


def _require(frame: pl.DataFrame, columns: tuple[str, ...] | list[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SlippageError(f"{where}: missing columns {missing} (has {frame.columns})")


def _numeric(frame: pl.DataFrame, column: str, where: str) -> FloatArray:
    series = frame[column]
    if series.null_count():
        raise SlippageError(f"{where}: column {column!r} has {series.null_count()} nulls")
    try:
        values = series.cast(pl.Float64).to_numpy()
    except Exception as exc:  # polars raises several types for a failed cast
        raise SlippageError(f"{where}: column {column!r} is not numeric ({series.dtype})") from exc
    if not np.isfinite(values).all():
        raise SlippageError(f"{where}: column {column!r} has {int((~np.isfinite(values)).sum())} non-finite values")
    return np.ascontiguousarray(values, dtype=np.float64)


def _side(frame: pl.DataFrame, where: str) -> FloatArray:
    series = frame["side"]
    if series.null_count():
        raise SlippageError(f"{where}: column 'side' has {series.null_count()} nulls")
    if series.dtype.is_numeric():
        values = series.cast(pl.Float64).to_numpy()
    else:
        text = series.cast(pl.String).str.to_lowercase()
        values = text.replace_strict({"buy": 1.0, "sell": -1.0}, default=0.0, return_dtype=pl.Float64).to_numpy()
    bad = ~np.isin(values, (1.0, -1.0))
    if bad.any():
        sample = series.filter(pl.Series(bad)).unique().head(5).to_list()
        raise SlippageError(f"{where}: column 'side' must be buy/sell or +1/-1, found {sample}")
    return np.ascontiguousarray(values, dtype=np.float64)


def order_features(frame: pl.DataFrame) -> FloatArray:
    """The (n, 5) float64 feature matrix of a fills/orders table, columns in ``FEATURES`` order.

    Requires the ``FEATURES`` columns; ``side`` may be "buy"/"sell" (any case) or +1/-1. Raises
    ``SlippageError`` on nulls, non-finite values, negative size/spread/participation or sigma <= 0.
    """
    where = "order_features"
    _require(frame, FEATURES, where)
    columns = {name: _numeric(frame, name, where) for name in FEATURES if name != "side"}
    for name in ("size_over_adv", "spread_bps", "participation"):
        if (columns[name] < 0).any():
            raise SlippageError(f"{where}: column {name!r} must be >= 0")
    if (columns["sigma"] <= 0).any():
        raise SlippageError(f"{where}: column 'sigma' (daily vol) must be > 0")
    columns["side"] = _side(frame, where)
    return np.column_stack([columns[name] for name in FEATURES]) if frame.height else np.empty((0, len(FEATURES)))


def _half_spread_and_vol_bps(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    return 0.5 * x[:, FEATURES.index("spread_bps")], x[:, FEATURES.index("sigma")] * BPS


def _realized(frame: pl.DataFrame, where: str) -> FloatArray:
    _require(frame, [TARGET], where)
    return _numeric(frame, TARGET, where)


def time_split(fills: pl.DataFrame, test_fraction: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Train/test by date: the latest ``ceil(test_fraction * n_dates)`` distinct dates are the test set.

    Every test date is strictly after every train date; row order within each part is kept.
    """
    where = "time_split"
    _require(fills, [DATE], where)
    if fills[DATE].null_count():
        raise SlippageError(f"{where}: column 'date' has {fills[DATE].null_count()} nulls")
    dates = fills[DATE].unique().sort()
    if len(dates) < 2:
        raise SlippageError(f"{where}: needs fills on at least 2 distinct dates, got {len(dates)}")
    n_test = min(max(1, math.ceil(test_fraction * len(dates))), len(dates) - 1)
    cut = dates[len(dates) - n_test]
    return fills.filter(pl.col(DATE) < cut), fills.filter(pl.col(DATE) >= cut)


def sqrt_regressor(frame: pl.DataFrame) -> FloatArray:
    """``x = sigma_bps * sqrt(size_over_adv)``, the square-root law's regressor."""
    x = order_features(frame)
    return x[:, FEATURES.index("sigma")] * BPS * np.sqrt(x[:, FEATURES.index("size_over_adv")])


def fit_square_root_law(fills: pl.DataFrame) -> float:
    """Least-squares ``Y`` of ``realized - spread/2 = Y sigma_bps sqrt(Q/ADV)`` (no intercept, closed form)."""
    where = "fit_square_root_law"
    x = sqrt_regressor(fills)
    r = _realized(fills, where) - 0.5 * _numeric(fills, "spread_bps", where)
    denominator = float(x @ x)
    if denominator <= 0:
        raise SlippageError(f"{where}: every fill has size 0; Y is not identified")
    return float(x @ r) / denominator


def square_root_cost(orders: pl.DataFrame, y: float) -> FloatArray:
    """The square-root law's cost in bps: ``spread/2 + y sigma_bps sqrt(Q/ADV)``."""
    return 0.5 * _numeric(orders, "spread_bps", "square_root_cost") + y * sqrt_regressor(orders)


def noise_floor_mae(fills: pl.DataFrame) -> float:
    """MAE of the TRUE expected cost against the realised one: the best any cost model can do.

    (The conditional median minimises MAE; with the synthetic market's symmetric noise it is the mean.)
    Needs ``true_cost_bps``, which only simulated fills carry.
    """
    where = "noise_floor_mae"
    _require(fills, [TRUE_COST, TARGET], where)
    if fills.height == 0:
        raise SlippageError(f"{where}: no fills")
    return float(np.mean(np.abs(_numeric(fills, TRUE_COST, where) - _realized(fills, where))))


def _mae(a: FloatArray, b: FloatArray) -> float:
    return float(np.mean(np.abs(a - b)))


def _rmse(a: FloatArray, b: FloatArray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


# --------------------------------------------------------------------------------------------
# The fitted model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FittedSlippage:
    """Mean and quantile boosters (vol-normalised target), the square-root baseline and test metrics."""

    config: SlippageConfig
    mean_model: lgb.Booster
    quantile_models: tuple[lgb.Booster, ...]  # one per config.quantiles, same order
    baseline_y: float
    fit_metrics: dict[str, Any]

    @property
    def quantile_columns(self) -> list[str]:
        return [quantile_column(q) for q in self.config.quantiles]

    def _predict_matrix(self, x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Expected cost, rearranged quantiles (n, k) and the per-row 'rearranged' flag."""
        if x.shape[0] == 0:
            return np.empty(0), np.empty((0, len(self.quantile_models))), np.empty(0, dtype=bool)
        half_spread, vol_bps = _half_spread_and_vol_bps(x)
        expected = half_spread + vol_bps * self.mean_model.predict(x, num_threads=NUM_THREADS)
        raw = np.column_stack(
            [half_spread + vol_bps * m.predict(x, num_threads=NUM_THREADS) for m in self.quantile_models]
        )
        quantiles = np.maximum(np.sort(raw, axis=1), expected[:, None])
        changed = (quantiles != raw).any(axis=1)
        return expected, quantiles, changed

    def predict(self, orders: pl.DataFrame) -> pl.DataFrame:
        """``expected_cost_bps`` and ``p90_cost_bps``, ``p95_cost_bps`` (one per configured quantile),
        one row per order in input order. Quantiles are sorted per row and floored at the expected
        cost, so ``p95 >= p90 >= expected`` on every row (see the module docstring)."""
        expected, quantiles, _ = self._predict_matrix(order_features(orders))
        data: dict[str, Any] = {"expected_cost_bps": expected}
        for j, name in enumerate(self.quantile_columns):
            data[name] = quantiles[:, j]
        return pl.DataFrame(data, schema={name: pl.Float64() for name in data})

    def baseline_predict(self, orders: pl.DataFrame) -> pl.Series:
        """The fitted square-root law's cost in bps (``baseline_cost_bps``), one per order."""
        return pl.Series("baseline_cost_bps", square_root_cost(orders, self.baseline_y), dtype=pl.Float64())

    def evaluate(self, fills: pl.DataFrame) -> dict[str, Any]:
        """Model vs baseline on ``fills`` (any split): MAE, RMSE, quantile coverage, crossing share and,
        when ``true_cost_bps`` is present, the noise floor and each model's MAE against the truth."""
        where = "evaluate"
        if fills.height == 0:
            raise SlippageError(f"{where}: no fills")
        x = order_features(fills)
        realized = _realized(fills, where)
        expected, quantiles, changed = self._predict_matrix(x)
        baseline = square_root_cost(fills, self.baseline_y)
        out: dict[str, Any] = {
            "n": int(fills.height),
            "mae_model": _mae(expected, realized),
            "rmse_model": _rmse(expected, realized),
            "mae_baseline": _mae(baseline, realized),
            "rmse_baseline": _rmse(baseline, realized),
            "quantile_rearranged_share": float(changed.mean()),
        }
        for j, q in enumerate(self.config.quantiles):
            out[f"coverage_p{round(q * 100)}"] = float(np.mean(realized <= quantiles[:, j]))
        if TRUE_COST in fills.columns:
            truth = _numeric(fills, TRUE_COST, where)
            floor = _mae(truth, realized)
            out["noise_floor_mae"] = floor
            out["mae_ratio_to_floor"] = out["mae_model"] / floor if floor > 0 else None
            out["baseline_mae_ratio_to_floor"] = out["mae_baseline"] / floor if floor > 0 else None
            out["oracle_mae_model"] = _mae(expected, truth)  # distance to the true expected cost
            out["oracle_mae_baseline"] = _mae(baseline, truth)
        else:
            out["noise_floor_mae"] = None
        return out

    def metrics(self) -> dict[str, Any]:
        """Fit summary: split sizes and dates, baseline ``Y`` and the test-split ``evaluate`` figures."""
        return dict(self.fit_metrics)

    # ---- persistence ----------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write ``mean.txt``, ``p90.txt``, ``p95.txt`` (LightGBM text models) and ``slippage.json``
        into ``directory``; equal fits give equal bytes, so ``save_artifact`` hashes them stably."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.mean_model.save_model(str(directory / MEAN_FILE))
        for booster, name in zip(self.quantile_models, _quantile_files(self.config), strict=True):
            booster.save_model(str(directory / name))
        write_json(
            directory / META_FILE,
            {
                "format_version": FORMAT_VERSION,
                "kind": KIND,
                "config": self.config.to_params(),
                "features": list(FEATURES),
                "target": "(realized_cost_bps - spread_bps / 2) / (sigma * 1e4)",
                "baseline": {"formula": "spread_bps / 2 + Y * sigma * 1e4 * sqrt(size_over_adv)", "Y": self.baseline_y},
                "metrics": self.fit_metrics,
                "lightgbm_version": lgb.__version__,
            },
        )

    @classmethod
    def load(cls, directory: Path) -> FittedSlippage:
        directory = Path(directory)
        meta = read_json(directory / META_FILE)
        check_header(meta, kind=KIND, format_version=FORMAT_VERSION, error=SlippageError, where=str(directory))
        if tuple(meta.get("features", ())) != FEATURES:
            raise SlippageError(f"{directory}: saved with features {meta.get('features')}, this code uses {FEATURES}")
        config = SlippageConfig.from_params(meta["config"])
        return cls(
            config=config,
            mean_model=lgb.Booster(model_file=str(directory / MEAN_FILE)),
            quantile_models=tuple(lgb.Booster(model_file=str(directory / f)) for f in _quantile_files(config)),
            baseline_y=float(meta["baseline"]["Y"]),
            fit_metrics=dict(meta["metrics"]),
        )

    def save_artifact(self, root: Path, name: str = KIND) -> Path:
        """Publish as the content-addressed artifact ``root/name/<hash>`` and return its path."""
        return save_artifact(Path(root), name, self.save)


def _quantile_files(config: SlippageConfig) -> list[str]:
    return [f"p{round(q * 100)}.txt" for q in config.quantiles]


def load_slippage(directory: Path) -> FittedSlippage:
    return FittedSlippage.load(directory)


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def fit_slippage(
    fills: pl.DataFrame, config: SlippageConfig | None = None, extra_train: pl.DataFrame | None = None
) -> FittedSlippage:
    """Fit the mean and quantile models and the square-root baseline on the train dates; score on the test dates.

    ``fills`` needs ``date``, ``realized_cost_bps`` and the ``FEATURES`` columns (``true_cost_bps``, if
    present, adds the noise floor and oracle errors to the metrics). ``extra_train`` (same columns; e.g. the
    execution ledger's fills) joins the train part only, so the scores stay on fills whose truth is known.
    Deterministic for a given table.
    """
    config = config or SlippageConfig()
    where = "fit_slippage"
    _require(fills, [DATE, TARGET, *FEATURES], where)
    train, test = time_split(fills, config.test_fraction)
    n_extra = 0
    if extra_train is not None and extra_train.height:
        _require(extra_train, [DATE, TARGET, *FEATURES], f"{where} (extra_train)")
        columns = [DATE, TARGET, *FEATURES]
        extra = extra_train.select([pl.col(c).cast(train.schema[c]) for c in columns])
        train = pl.concat([train.select(columns), extra])
        n_extra = extra.height
    if train.height < 2 * config.min_child_samples:
        raise SlippageError(
            f"{where}: {train.height} train fills is too few for min_child_samples={config.min_child_samples}"
        )
    x = order_features(train)
    half_spread, vol_bps = _half_spread_and_vol_bps(x)
    y = (_realized(train, where) - half_spread) / vol_bps

    def train_one(params: dict[str, Any]) -> lgb.Booster:
        data = lgb.Dataset(x, label=y, feature_name=list(FEATURES), free_raw_data=True, params={"verbosity": -1})
        return lgb.train(params, data, num_boost_round=config.n_estimators)

    mean_model = train_one(config.lgb_params(config.objective))
    quantile_models = tuple(train_one(config.lgb_params("quantile", alpha=q)) for q in config.quantiles)
    baseline_y = fit_square_root_law(train)

    fitted = FittedSlippage(config, mean_model, quantile_models, baseline_y, {})
    summary: dict[str, Any] = {
        "n_train": int(train.height),
        "n_train_extra": n_extra,
        "n_test": int(test.height),
        "train_start": str(train[DATE].min()),
        "train_end": str(train[DATE].max()),
        "test_start": str(test[DATE].min()),
        "test_end": str(test[DATE].max()),
        "baseline_y": baseline_y,
        **fitted.evaluate(test),
    }
    return dataclasses.replace(fitted, fit_metrics=summary)


# --------------------------------------------------------------------------------------------
# Plot (for Dagster metadata)
# --------------------------------------------------------------------------------------------


def plot_predicted_vs_realized(
    fitted: FittedSlippage, fills: pl.DataFrame, path: Path, max_points: int = 5000, n_bins: int = 20
) -> Path:
    """PNG: realised vs predicted cost, LightGBM mean (left) and square-root baseline (right), on ``fills``
    (pass the test split). Points are an evenly spaced subsample; the line is the mean realised cost per
    predicted-cost quantile bin (on the diagonal = calibrated). Returns ``path``. matplotlib's object API
    (no pyplot, no global state)."""
    from matplotlib.figure import Figure

    if fills.height == 0:
        raise SlippageError("plot_predicted_vs_realized: no fills")
    realized = _realized(fills, "plot_predicted_vs_realized")
    panels = [
        ("LightGBM (expected)", fitted.predict(fills)["expected_cost_bps"].to_numpy()),
        (f"square-root law (Y={fitted.baseline_y:.3f})", fitted.baseline_predict(fills).to_numpy()),
    ]
    shown = np.unique(np.linspace(0, fills.height - 1, min(max_points, fills.height)).astype(np.int64))
    everything = np.concatenate([realized] + [p for _, p in panels])
    low, high = np.quantile(everything, [0.001, 0.995])

    fig = Figure(figsize=(11, 4.8), dpi=100)
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, (title, predicted) in zip(axes, panels, strict=True):
        ax.plot(predicted[shown], realized[shown], ".", ms=2, alpha=0.3, color="0.5", label="fills")
        edges = np.unique(np.quantile(predicted, np.linspace(0, 1, n_bins + 1)))
        which = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, len(edges) - 2)
        bins = [b for b in range(len(edges) - 1) if (which == b).any()]
        ax.plot(
            [predicted[which == b].mean() for b in bins],
            [realized[which == b].mean() for b in bins],
            "o-",
            ms=3,
            color="C0",
            label="binned mean",
        )
        ax.plot([low, high], [low, high], "--", lw=1, color="C3", label="y = x")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_title(f"{title}: MAE {_mae(predicted, realized):.2f} bps")
        ax.set_xlabel("predicted cost (bps)")
        ax.legend(loc="upper left", fontsize="small")
    axes[0].set_ylabel("realised cost (bps)")
    fig.tight_layout()
    return save_png(fig, path)
