"""Market regimes: a Gaussian Markov-switching model of the daily market return.

Model (``statsmodels`` ``MarkovRegression(y, k_regimes, trend="c", switching_variance=True)``)::

    y_t | s_t = i  ~  N(mu_i, sigma_i^2),     P[i, j] = P(s_{t+1} = j | s_t = i)

Fitting (``fit_regime``):

* returns are multiplied by ``RegimeConfig.scale`` (100: per cent) for the optimiser's sake; every
  reported number (means, vols, log-likelihood) is back on the original return scale;
* ``n_starts`` starting points, all reproducible from ``seed``: start 0 is statsmodels' own default,
  the others are random (regime vols spread over a random log-range, means jittered, transition
  diagonals in [0.80, 0.99]); each runs ``em_iter`` EM steps and then BFGS for ``max_iter`` steps;
* a start counts only if the optimiser reports convergence (``mle_retvals["converged"]``) and its
  parameters and log-likelihood are finite with no collapsed variance; the best log-likelihood
  among those wins; none -> ``RegimeFitError`` saying how many starts were tried and why each failed;
* regimes are then relabelled by volatility ascending (ties: by mean), so regime 0 is the calmest
  and labels do not depend on the start that won.

Applying a fitted model (``FittedRegime.filtered_probabilities``) uses ``hamilton_filter`` below, a
small numpy Hamilton filter: ``P(s_t | y_1..y_t)`` only ever looks at data up to ``t`` (no
lookahead), needs no refit on new data, and, fed the TRUE parameters of a synthetic market, is the
oracle the fitted model is scored against.

A fitted model is plain JSON (``save``/``load``, no pickles) so that ``save_artifact`` can
content-address it: the same fit gives the same folder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.errors import MemError, format_rows
from mem_pipeline.models.artifacts import check_header, read_json, save_png, write_json

FloatArray = NDArray[np.float64]

DATE_COLUMN = "trade_date"
RETURN_COLUMN = "mkt_ret"
MODEL_FILE = "regime.json"
FORMAT_VERSION = 1
TRADING_DAYS = 252
_LOG_2PI = math.log(2.0 * math.pi)
# A start whose smallest variance falls below this share of the sample variance has collapsed onto a
# handful of points (the likelihood is unbounded there): it is not a usable fit.
_MIN_VARIANCE_SHARE = 1e-6


class RegimeFitError(MemError):
    """No usable regime model could be fitted to the given returns."""


class RegimeInputError(MemError, ValueError):
    """A regime config or returns frame breaks a rule (names the rule and, where known, the rows)."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegimeConfig(ParamsConfig):
    """How to fit the regime model (``models.regime`` in params.yaml shape; see ``from_params``)."""

    SECTION: ClassVar[str] = "models.regime"
    ERROR: ClassVar[type[Exception]] = RegimeInputError

    k_regimes: int = 2  # 2 or 3
    switching_variance: bool = True
    n_starts: int = 5  # starting points (start 0 = statsmodels' default, the rest random from seed)
    seed: int = 0
    max_iter: int = 200  # BFGS iterations per start
    em_iter: int = 10  # EM iterations that polish each start before BFGS
    scale: float = 100.0  # returns are fitted as ``scale * r`` (per cent) for numerical stability

    def __post_init__(self) -> None:
        if self.k_regimes not in (2, 3):
            raise RegimeInputError(f"k_regimes must be 2 or 3, got {self.k_regimes!r}")
        if self.n_starts < 1:
            raise RegimeInputError(f"n_starts must be >= 1, got {self.n_starts!r}")
        if self.max_iter < 1 or self.em_iter < 0:
            raise RegimeInputError(f"needs max_iter >= 1 and em_iter >= 0, got {self.max_iter}, {self.em_iter}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise RegimeInputError(f"scale must be a positive number, got {self.scale!r}")

    def to_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RegimeConfig:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------------
# The Hamilton filter (numpy; also the oracle)
# --------------------------------------------------------------------------------------------


def stationary_distribution(transition: ArrayLike) -> FloatArray:
    """``pi = pi P`` for a row-stochastic ``P`` (least squares; the unique answer for an irreducible chain)."""
    matrix = np.asarray(transition, dtype=float)
    k = matrix.shape[0]
    system = np.vstack([matrix.T - np.eye(k), np.ones(k)])
    target = np.zeros(k + 1)
    target[-1] = 1.0
    pi = np.clip(np.linalg.lstsq(system, target, rcond=None)[0], 0.0, None)
    return pi / pi.sum()


def hamilton_filter(
    y: ArrayLike,
    means: ArrayLike,
    vols: ArrayLike,
    transition: ArrayLike,
    initial: ArrayLike | None = None,
) -> tuple[FloatArray, float]:
    """Filtered regime probabilities ``P(s_t = i | y_0..y_t)`` (shape ``(T, k)``) and the log-likelihood.

    Gaussian emissions ``y_t | s_t = i ~ N(means[i], vols[i]^2)``; ``transition[i, j] =
    P(s_{t+1} = j | s_t = i)`` (rows sum to 1); ``initial`` is the prior of ``s_0`` before ``y_0``
    is seen (default: the chain's stationary distribution, as statsmodels' "steady-state"). Row
    ``t`` depends on ``y[: t + 1]`` only. Densities are rescaled per day (log-sum-exp), so tiny vols
    or extreme returns do not underflow; a day impossible under every regime leaves the prediction
    unchanged and makes the log-likelihood ``-inf``.
    """
    values = np.asarray(y, dtype=float).ravel()
    mu = np.asarray(means, dtype=float).ravel()
    sd = np.asarray(vols, dtype=float).ravel()
    matrix = np.asarray(transition, dtype=float)
    k = mu.size
    if k < 1 or sd.shape != (k,) or matrix.shape != (k, k):
        raise ValueError(f"shapes disagree: means {mu.shape}, vols {sd.shape}, transition {matrix.shape}")
    if not (np.isfinite(sd).all() and (sd > 0).all() and np.isfinite(mu).all()):
        raise ValueError("means must be finite and vols finite and > 0")
    if (matrix < 0).any() or not np.allclose(matrix.sum(axis=1), 1.0, rtol=0, atol=1e-8):
        raise ValueError("transition rows must be non-negative and sum to 1 (P[i, j] = P(next=j | now=i))")
    if not np.isfinite(values).all():
        raise ValueError("y must be finite")
    prior = stationary_distribution(matrix) if initial is None else np.asarray(initial, dtype=float).ravel()
    if prior.shape != (k,) or (prior < 0).any() or not math.isclose(prior.sum(), 1.0, abs_tol=1e-8):
        raise ValueError("initial must be a probability vector of length k")

    n = values.size
    z = (values[:, None] - mu[None, :]) / sd[None, :]
    log_density = -0.5 * z * z - np.log(sd)[None, :] - 0.5 * _LOG_2PI
    shift = log_density.max(axis=1)
    density = np.exp(log_density - shift[:, None])  # the likeliest regime of each day has 1
    filtered = np.empty((n, k))
    log_norm = np.empty(n)
    predicted = prior
    for t in range(n):
        joint = predicted * density[t]
        total = joint.sum()
        if total > 0.0:
            current = joint / total
            log_norm[t] = math.log(total)
        else:
            current = predicted
            log_norm[t] = -math.inf
        filtered[t] = current
        predicted = current @ matrix
    return filtered, float(shift.sum() + log_norm.sum())


# --------------------------------------------------------------------------------------------
# The fitted model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FittedRegime:
    """A fitted regime model on the ORIGINAL return scale, regimes ordered by vol (0 = calm)."""

    k_regimes: int
    means: tuple[float, ...]  # daily mean return per regime
    vols: tuple[float, ...]  # daily return vol per regime (ascending)
    transition: tuple[tuple[float, ...], ...]  # P[i][j] = P(next = j | now = i)
    loglik: float  # log-likelihood of the unscaled returns
    converged: bool
    n_obs: int
    start_date: dt.date  # first and last trade_date the model was fitted on
    end_date: dt.date
    switching_variance: bool = True
    n_starts: int = 1  # starting points tried
    n_converged: int = 1  # of which converged to a usable fit
    data_digest: str = ""  # sha256 (16 hex) of the fitted returns: which data this model saw
    config: RegimeConfig = dataclasses.field(default_factory=RegimeConfig)

    # -- parameters --------------------------------------------------------------------------

    @property
    def transition_matrix(self) -> FloatArray:
        return np.asarray(self.transition, dtype=float)

    @property
    def n_params(self) -> int:
        k = self.k_regimes
        return k * (k - 1) + k + (k if self.switching_variance else 1)

    @property
    def aic(self) -> float:
        return 2.0 * self.n_params - 2.0 * self.loglik

    @property
    def bic(self) -> float:
        return self.n_params * math.log(self.n_obs) - 2.0 * self.loglik

    def stationary(self) -> FloatArray:
        return stationary_distribution(self.transition_matrix)

    def expected_durations(self) -> FloatArray:
        """Expected days in each regime once entered: ``1 / (1 - p_ii)`` (inf for an absorbing regime)."""
        stay = np.diag(self.transition_matrix)
        with np.errstate(divide="ignore"):
            return np.where(stay < 1.0, 1.0 / (1.0 - stay), np.inf)

    def columns(self) -> list[str]:
        return [f"p_regime_{i}" for i in range(self.k_regimes)]

    # -- applying the model ------------------------------------------------------------------

    def filter(self, y: ArrayLike) -> tuple[FloatArray, float]:
        """``hamilton_filter`` with this model's parameters on a raw return array."""
        return hamilton_filter(y, self.means, self.vols, self.transition_matrix)

    def filtered_probabilities(self, returns: pl.DataFrame) -> pl.DataFrame:
        """``trade_date, p_regime_0..k-1``: ``P(regime | returns up to that day)`` (Hamilton filter, no smoothing).

        Rows come out sorted by ``trade_date``; rows whose ``mkt_ret`` is null are dropped (see
        ``prepare_returns``). The filter starts from the stationary distribution on the first row.
        """
        dates, y = prepare_returns(returns)
        probs, _ = self.filter(y)
        return pl.DataFrame({DATE_COLUMN: dates, **{name: probs[:, i] for i, name in enumerate(self.columns())}})

    # -- reporting ---------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """Flat numbers for Dagster metadata: fit quality, and per regime its mean/vol (daily and
        annualised with 252 days), stationary share and expected duration in days."""
        out: dict[str, Any] = {
            "k_regimes": self.k_regimes,
            "loglik": self.loglik,
            "aic": self.aic,
            "bic": self.bic,
            "n_obs": self.n_obs,
            "n_params": self.n_params,
            "n_starts": self.n_starts,
            "n_converged": self.n_converged,
            "converged": self.converged,
            "fit_start": self.start_date.isoformat(),
            "fit_end": self.end_date.isoformat(),
        }
        shares, durations = self.stationary(), self.expected_durations()
        for i in range(self.k_regimes):
            out[f"regime_{i}_mean"] = self.means[i]
            out[f"regime_{i}_vol"] = self.vols[i]
            out[f"regime_{i}_mean_annual"] = self.means[i] * TRADING_DAYS
            out[f"regime_{i}_vol_annual"] = self.vols[i] * math.sqrt(TRADING_DAYS)
            out[f"regime_{i}_stay_prob"] = self.transition[i][i]
            out[f"regime_{i}_expected_duration_days"] = float(durations[i])
            out[f"regime_{i}_stationary_share"] = float(shares[i])
        return out

    # -- persistence -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        payload = {f.name: getattr(self, f.name) for f in fields(self)}
        payload["means"] = list(self.means)
        payload["vols"] = list(self.vols)
        payload["transition"] = [list(row) for row in self.transition]
        payload["start_date"] = self.start_date.isoformat()
        payload["end_date"] = self.end_date.isoformat()
        payload["config"] = self.config.to_params()
        return {"model": "markov_regression", "format_version": FORMAT_VERSION, **payload}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> FittedRegime:
        check_header(
            payload,
            kind="markov_regression",
            format_version=FORMAT_VERSION,
            error=RegimeInputError,
            where="regime model",
            key="model",
        )
        try:
            fitted = cls(
                k_regimes=int(payload["k_regimes"]),
                means=tuple(float(v) for v in payload["means"]),
                vols=tuple(float(v) for v in payload["vols"]),
                transition=tuple(tuple(float(v) for v in row) for row in payload["transition"]),
                loglik=float(payload["loglik"]),
                converged=bool(payload["converged"]),
                n_obs=int(payload["n_obs"]),
                start_date=dt.date.fromisoformat(payload["start_date"]),
                end_date=dt.date.fromisoformat(payload["end_date"]),
                switching_variance=bool(payload["switching_variance"]),
                n_starts=int(payload["n_starts"]),
                n_converged=int(payload["n_converged"]),
                data_digest=str(payload["data_digest"]),
                config=RegimeConfig.from_params(payload["config"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RegimeInputError(f"malformed regime model JSON: {exc!r}") from exc
        k = fitted.k_regimes
        if len(fitted.means) != k or len(fitted.vols) != k or fitted.transition_matrix.shape != (k, k):
            raise RegimeInputError(f"malformed regime model JSON: parameters do not match k_regimes={k}")
        return fitted

    def save(self, directory: Path) -> Path:
        """Write ``regime.json`` into ``directory`` (usable as ``save_artifact(root, name, fitted.save)``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE
        write_json(path, self.to_json())
        return path

    @classmethod
    def load(cls, directory: Path) -> FittedRegime:
        return cls.from_json(read_json(Path(directory) / MODEL_FILE))


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def prepare_returns(returns: pl.DataFrame) -> tuple[pl.Series, FloatArray]:
    """``(trade_date, mkt_ret)`` sorted by date, null returns dropped (a log-return series starts
    with one); duplicate dates, NaN or infinite returns are refused, naming the rows."""
    missing = [c for c in (DATE_COLUMN, RETURN_COLUMN) if c not in returns.columns]
    if missing:
        raise RegimeInputError(f"returns frame lacks column(s) {missing}; has {returns.columns}")
    if not returns.schema[DATE_COLUMN].is_temporal():
        raise RegimeInputError(f"{DATE_COLUMN} must be a Date or Datetime column, got {returns.schema[DATE_COLUMN]}")
    if not returns.schema[RETURN_COLUMN].is_numeric():
        raise RegimeInputError(f"{RETURN_COLUMN} must be numeric, got {returns.schema[RETURN_COLUMN]}")
    frame = returns.select(DATE_COLUMN, pl.col(RETURN_COLUMN).cast(pl.Float64)).with_row_index("_row")
    frame = frame.filter(pl.col(RETURN_COLUMN).is_not_null() & pl.col(DATE_COLUMN).is_not_null())
    bad = frame.filter(~pl.col(RETURN_COLUMN).is_finite())["_row"].to_list()
    if bad:
        raise RegimeInputError(f"{RETURN_COLUMN} must be finite; NaN/inf at rows {format_rows(bad)}")
    frame = frame.sort(DATE_COLUMN, maintain_order=True)
    duplicated = frame.filter(pl.col(DATE_COLUMN).is_duplicated())["_row"].to_list()
    if duplicated:
        raise RegimeInputError(f"{DATE_COLUMN} must be unique; duplicated at rows {format_rows(duplicated)}")
    return frame[DATE_COLUMN], frame[RETURN_COLUMN].to_numpy().astype(np.float64, copy=True)


def min_observations(k_regimes: int) -> int:
    """Fewer points than this (10 per parameter) cannot pin down a k-regime model."""
    return 10 * (k_regimes * (k_regimes - 1) + 2 * k_regimes)


@dataclass(frozen=True)
class _Candidate:
    """One start's result in statsmodels' regime order and on the scaled return axis."""

    start: int
    means: FloatArray
    variances: FloatArray
    transition: FloatArray  # row-stochastic, statsmodels order
    loglik: float
    converged: bool
    problem: str  # "" when usable


def fit_regime(returns: pl.DataFrame, config: RegimeConfig | None = None) -> FittedRegime:
    """Fit the Markov-switching model to ``returns`` (``trade_date, mkt_ret``); see the module docstring."""
    config = config or RegimeConfig()
    dates, y = prepare_returns(returns)
    k = config.k_regimes
    need = min_observations(k)
    if y.size < need:
        raise RegimeFitError(
            f"{y.size} returns are too few for a {k}-regime model: need at least {need} "
            f"(10 per parameter); no fit attempted"
        )
    if float(np.max(y)) == float(np.min(y)):
        raise RegimeFitError(
            f"{RETURN_COLUMN} is constant ({y[0]!r} on all {y.size} days): there is no variance to split into "
            f"{k} regimes; no fit attempted"
        )
    model = _model(y * config.scale, config)
    candidates = [_fit_start(model, i, params, config) for i, params in enumerate(start_points(model, config))]
    usable = [c for c in candidates if not c.problem]
    if not usable:
        reasons = "; ".join(f"start {c.start}: {c.problem}" for c in candidates)
        raise RegimeFitError(
            f"no usable {k}-regime fit on {y.size} returns ({dates[0]} .. {dates[-1]}): "
            f"0 of {len(candidates)} starts converged to finite parameters ({reasons})"
        )
    best = max(usable, key=lambda c: (c.loglik, -c.start))  # ties: the earliest start
    means, vols, transition = order_regimes(
        best.means / config.scale, np.sqrt(best.variances) / config.scale, best.transition
    )
    return FittedRegime(
        k_regimes=k,
        means=tuple(float(v) for v in means),
        vols=tuple(float(v) for v in vols),
        transition=tuple(tuple(float(v) for v in row) for row in transition),
        loglik=float(best.loglik + y.size * math.log(config.scale)),  # density of r = scale * density of scale*r
        converged=best.converged,
        n_obs=int(y.size),
        start_date=_as_date(dates[0]),
        end_date=_as_date(dates[-1]),
        switching_variance=config.switching_variance,
        n_starts=len(candidates),
        n_converged=len(usable),
        data_digest=hashlib.sha256(y.tobytes()).hexdigest()[:16],
        config=config,
    )


def order_regimes(
    means: ArrayLike, vols: ArrayLike, transition: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Relabel regimes by vol ascending (ties by mean ascending): permute means, vols and both axes of P."""
    mu, sd, matrix = np.asarray(means, float), np.asarray(vols, float), np.asarray(transition, float)
    order = np.lexsort((mu, sd))
    return mu[order], sd[order], matrix[np.ix_(order, order)]


def _model(y_scaled: FloatArray, config: RegimeConfig) -> Any:
    import statsmodels.api as sm  # imported lazily: heavy, and only fitting needs it

    return sm.tsa.MarkovRegression(
        y_scaled, k_regimes=config.k_regimes, trend="c", switching_variance=config.switching_variance
    )


def start_points(model: Any, config: RegimeConfig) -> list[FloatArray]:
    """``n_starts`` statsmodels parameter vectors: the model's default, then seeded random ones.

    Random starts: regime variances ``v * exp(linspace(-w/2, w/2))`` with a random log-width
    ``w ~ U(1, 4)`` in a random regime order, means = sample mean + ``N(0, (0.1 sd)^2)``, transition
    diagonals ``U(0.80, 0.99)`` with the rest of each row split at random.
    """
    y = np.asarray(model.endog, dtype=float).ravel()
    k = config.k_regimes
    rng = np.random.default_rng([config.seed, k])
    starts = [np.asarray(model.start_params, dtype=float)]
    for _ in range(config.n_starts - 1):
        width = rng.uniform(1.0, 4.0)
        variances = float(np.var(y)) * np.exp(np.linspace(-width / 2, width / 2, k))
        if config.switching_variance:
            variances = variances[rng.permutation(k)]
        means = float(np.mean(y)) + 0.1 * float(np.std(y)) * rng.standard_normal(k)
        transition = np.empty((k, k))
        for i in range(k):
            stay = rng.uniform(0.80, 0.99)
            rest = rng.dirichlet(np.ones(k - 1)) * (1.0 - stay)
            transition[i] = np.insert(rest, i, stay)
        starts.append(statsmodels_params(model, means, variances, transition))
    return starts


def statsmodels_params(model: Any, means: ArrayLike, variances: ArrayLike, transition: ArrayLike) -> FloatArray:
    """Our parameters (row-stochastic ``P``, scaled axis) as the model's parameter vector.

    statsmodels names them ``p[j->i]`` = P(next = i | now = j) for i < k-1, ``const[i]`` and
    ``sigma2[i]`` (or ``sigma2`` without switching variance: the first variance is used).
    """
    mu, var, matrix = np.asarray(means, float), np.asarray(variances, float), np.asarray(transition, float)
    values: dict[str, float] = {}
    k = mu.size
    for i in range(k):
        values[f"const[{i}]"] = float(mu[i])
        values[f"sigma2[{i}]"] = float(var[i])
        for j in range(k):
            values[f"p[{j}->{i}]"] = float(matrix[j, i])
    values["sigma2"] = float(var[0])
    return np.array([values[name] for name in model.param_names], dtype=float)


def _fit_start(model: Any, index: int, start: FloatArray, config: RegimeConfig) -> _Candidate:
    k = config.k_regimes
    empty = np.full(k, np.nan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with np.errstate(all="ignore"):
                result = model.fit(
                    start_params=start,
                    em_iter=config.em_iter,
                    maxiter=config.max_iter,
                    cov_type="none",
                    disp=False,
                )
        except Exception as exc:  # statsmodels/scipy raise assorted errors on degenerate data
            return _Candidate(index, empty, empty, np.full((k, k), np.nan), -math.inf, False, f"{exc!r}")
    params = np.asarray(result.params, dtype=float)
    converged = bool(result.mle_retvals.get("converged", False))
    loglik = float(result.llf)
    with np.errstate(all="ignore"):
        matrix = np.asarray(model.regime_transition_matrix(params), dtype=float)[..., 0].T
    names = list(model.param_names)
    means = np.array([params[names.index(f"const[{i}]")] for i in range(k)])
    if config.switching_variance:
        variances = np.array([params[names.index(f"sigma2[{i}]")] for i in range(k)])
    else:
        variances = np.full(k, params[names.index("sigma2")])
    problem = ""
    if not converged:
        detail = _optimizer_message(result.mle_retvals, [str(w.message) for w in caught])
        problem = f"optimizer did not converge within max_iter={config.max_iter} ({detail})"
    elif not (np.isfinite(params).all() and np.isfinite(matrix).all() and math.isfinite(loglik)):
        problem = "non-finite parameters or log-likelihood"
    elif (variances <= _MIN_VARIANCE_SHARE * float(np.var(model.endog))).any():
        problem = f"a regime variance collapsed to ~0 (variances {variances.tolist()})"
    return _Candidate(index, means, variances, matrix, loglik, converged, problem)


def _optimizer_message(retvals: dict[str, Any], warning_texts: Sequence[str]) -> str:
    parts = []
    if "warnflag" in retvals:
        parts.append(f"warnflag={retvals['warnflag']}")
    if "iterations" in retvals:
        parts.append(f"iterations={retvals['iterations']}")
    parts.extend(dict.fromkeys(text.splitlines()[0] for text in warning_texts if text))  # distinct, in order
    return ", ".join(parts) or "no detail"


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------


def plot_regimes(returns: pl.DataFrame, probs: pl.DataFrame, path: Path, regime: int | None = None) -> Path:
    """PNG for Dagster metadata: growth of 1 (shaded where ``P(regime) > 0.5``), daily returns, and
    ``P(regime)`` over time. ``regime`` defaults to the most volatile one (regime 1 of 2).

    Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = [c for c in probs.columns if c.startswith("p_regime_")]
    if not columns:
        raise RegimeInputError(f"probs has no p_regime_* columns: {probs.columns}")
    which = len(columns) - 1 if regime is None else regime
    column = f"p_regime_{which}"
    if column not in columns:
        raise RegimeInputError(f"probs has no {column}; has {columns}")
    dates, y = prepare_returns(returns)
    frame = pl.DataFrame({DATE_COLUMN: dates, RETURN_COLUMN: y}).join(
        probs.select(DATE_COLUMN, column), on=DATE_COLUMN, how="inner"
    )
    x = frame[DATE_COLUMN].to_numpy()
    r = frame[RETURN_COLUMN].to_numpy()
    p = frame[column].to_numpy()

    figure = Figure(figsize=(11, 7), dpi=100)
    FigureCanvasAgg(figure)
    top, middle, bottom = figure.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1.5]})
    label = f"P(regime {which}) > 0.5"
    for axis in (top, middle):
        axis.fill_between(
            x,
            0,
            1,
            where=p > 0.5,
            transform=axis.get_xaxis_transform(),
            color="tab:red",
            alpha=0.15,
            linewidth=0,
            step="mid",
            label=label,
        )
    top.plot(x, np.exp(np.cumsum(r)), color="black", linewidth=0.9, label="growth of 1")
    top.set_ylabel("growth of 1")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"Market regimes (filtered, no lookahead): {len(r)} days")
    middle.plot(x, r, color="tab:blue", linewidth=0.5)
    middle.set_ylabel("daily return")
    bottom.fill_between(x, 0, p, color="tab:red", alpha=0.6, linewidth=0, step="mid")
    bottom.set_ylim(0, 1)
    bottom.set_ylabel(f"P(regime {which})")
    figure.tight_layout()
    return save_png(figure, path)
