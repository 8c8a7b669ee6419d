"""Per-symbol GARCH(1,1) / GJR-GARCH(1,1,1) volatility forecasts with Student-t shocks, fitted by ``arch``.

Model (per symbol, on ``y_t = scale * r_t``, i.e. percent returns for ``scale = 100``)::

    y_t = mu + e_t,   e_t = sqrt(s_t) z_t,   z_t ~ unit-variance Student-t(nu)
    s_{t+1} = omega + (alpha + gamma * 1[e_t < 0]) e_t^2 + beta s_t      (gamma = 0 for "garch")

``persistence = alpha + gamma / 2 + beta`` (the shocks are symmetric); a fit with persistence >= 1,
a non-zero convergence flag or non-finite parameters is a failure, listed in ``FittedVol.failures``
with its reason like every symbol that could not be fitted (e.g. fewer than ``min_obs`` returns).

Units: the ``params`` table stores ``mu`` and ``omega`` in daily *return* units (``mu / scale``,
``omega / scale^2``; alpha, gamma, beta, nu are scale-free), and ``loglik`` is the log-likelihood of
the returns themselves (arch's value on ``y`` plus ``n log(scale)``). Forecasts are daily vols of
returns, not percent.

Forecasts: ``FittedVol.forecast(returns)`` runs the variance recursion above in numpy from the fitted
parameters over whatever returns it is given (no refit), and reports for each row ``(symbol,
trade_date)`` the one-step-ahead vol ``sqrt(s_{t+1})``: the forecast *for* the next trading day, made
with returns up to and including ``trade_date``. The recursion starts from the model's
**unconditional variance** (``s_0 = omega / (1 - persistence)``), not from arch's backcast (an
exponentially weighted mean of the first 75 squared residuals), because a backcast would let the
first 75 forecasts see later data. The start-up effect decays like ``persistence^t`` (0.98^250 is
0.6%): give ``forecast`` a burn-in of history before the first date you use.
arch's likelihood itself uses its backcast; only the forecasting recursion differs.

``forecast`` skips rows with a null, NaN or infinite return (the recursion treats the surrounding
returns as consecutive); ``fit_vol`` skips null/NaN returns and fails a symbol with infinite ones.
Symbols without fitted parameters get no forecast rows; they are in ``failures``.

Warm start: ``fit_vol(..., previous=fit)`` starts each symbol's optimiser at that symbol's previous
parameters (same model only). If arch rejects them (outside its data-dependent bounds) or the warm
fit does not converge, the symbol is refitted from arch's default start; ``warm_started`` says which
happened, ``iterations``/``func_evals`` record the optimiser's effort. ``warm_start_fit`` picks the
published fit a refit may start from: never one that saw data after the refit's ``as_of``.

Parallelism: symbols are fitted in up to 2 worker processes when there are at least
``PARALLEL_MIN_SYMBOLS`` of them and a core is idle (see ``fit_vol``); results are identical
either way.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import math
import multiprocessing
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.signal import lfilter

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.errors import MemError
from mem_pipeline.models.artifacts import (
    check_header,
    current_artifact,
    read_json,
    save_artifact,
    save_png,
    write_json,
)

FloatArray = NDArray[np.float64]

MODELS = ("garch", "gjr")
DISTRIBUTIONS = ("t",)
FORMAT_VERSION = 1
#: ``fit_vol(workers=None)`` goes parallel from this many symbols, and only while a core is idle.
#: Measured (bench/bench_vol.py, 2 cores, 10 years per symbol, ~27 ms per fit; forking the pool costs
#: ~0.15 CPU s): 2 forked workers run 0.82x as fast as sequential at 10 symbols, 1.41x at 25, 1.61x at
#: 50, 1.69x at 100 on a quiet machine; with the cores busy (load ~3.4) 0.73x-1.2x, i.e. no gain.
PARALLEL_MIN_SYMBOLS = 20
MAX_WORKERS = 2
#: Process start method of the workers. "fork" starts in milliseconds with arch already imported;
#: "spawn" re-imports arch (statsmodels, scipy.stats, pandas, matplotlib: ~3 s per worker on the
#: reference machine), which only pays off from several hundred symbols. The forked workers run
#: only numpy/scipy/arch code (never polars, whose thread pool does not survive a fork).
START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"

RETURN_COLUMNS = ("symbol", "trade_date", "ret_1d")
PARAM_SCHEMA: dict[str, Any] = {
    "symbol": pl.String(),
    "mu": pl.Float64(),
    "omega": pl.Float64(),
    "alpha": pl.Float64(),
    "gamma": pl.Float64(),
    "beta": pl.Float64(),
    "nu": pl.Float64(),
    "persistence": pl.Float64(),
    "uncond_vol": pl.Float64(),
    "next_vol": pl.Float64(),
    "loglik": pl.Float64(),
    "converged": pl.Boolean(),
    "iterations": pl.Int64(),
    "func_evals": pl.Int64(),
    "n_obs": pl.Int64(),
    "first_date": pl.Date(),
    "last_date": pl.Date(),
    "warm_started": pl.Boolean(),
}
FAILURE_SCHEMA: dict[str, Any] = {"symbol": pl.String(), "reason": pl.String(), "n_obs": pl.Int64()}
FORECAST_SCHEMA: dict[str, Any] = {"symbol": pl.String(), "trade_date": pl.Date(), "vol_forecast": pl.Float64()}


class VolError(MemError, ValueError):
    """Bad volatility-model configuration or input (names the key or column and the rule broken)."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VolConfig(ParamsConfig):
    """What determines a volatility fit (saved with every artifact).

    ``refit_every`` is the caller's refit cadence in trading days; ``fit_vol`` itself ignores it.
    """

    SECTION: ClassVar[str] = "models.volatility"
    ERROR: ClassVar[type[Exception]] = VolError

    model: str = "garch"  # "garch" = GARCH(1,1); "gjr" = GJR-GARCH(1,1,1)
    dist: str = "t"  # Student-t innovations (the only distribution supported)
    min_obs: int = 250
    scale: float = 100.0  # fit on scale * returns (percent): arch's optimiser is tuned for that
    refit_every: int = 21

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise VolError(f"volatility.model: must be one of {list(MODELS)}, got {self.model!r}")
        if self.dist not in DISTRIBUTIONS:
            raise VolError(f"volatility.dist: must be one of {list(DISTRIBUTIONS)}, got {self.dist!r}")
        if self.min_obs < 10:
            raise VolError(f"volatility.min_obs: must be >= 10, got {self.min_obs}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise VolError(f"volatility.scale: must be a positive number, got {self.scale}")
        if self.refit_every < 1:
            raise VolError(f"volatility.refit_every: must be >= 1 trading day, got {self.refit_every}")

    @property
    def o(self) -> int:
        """arch's asymmetry order: 1 for GJR, 0 for GARCH."""
        return 1 if self.model == "gjr" else 0

    def to_params(self) -> dict[str, Any]:
        """The mapping ``from_params`` reads: ``VolConfig.from_params(c.to_params()) == c``."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# The variance recursion (numpy) and losses
# --------------------------------------------------------------------------------------------


def garch_variance_path(
    resid: FloatArray, omega: float, alpha: float, gamma: float, beta: float, presample: float
) -> FloatArray:
    """Conditional variances ``s_0 .. s_n`` (length ``n + 1``) of residuals ``e_0 .. e_{n-1}``.

    ``s_t`` is the variance of ``e_t`` given ``e_{<t}``; ``s_n`` is the forecast beyond the last
    residual. ``presample`` stands in for both ``e_{-1}^2`` and ``s_{-1}`` exactly as arch's
    ``backcast`` does (``s_0 = omega + (alpha + gamma / 2 + beta) presample``), so passing arch's
    backcast reproduces arch, and passing the unconditional variance gives ``s_0 = omega / (1 - p)``.
    Units are those of ``resid`` squared.
    """
    e = np.asarray(resid, dtype=np.float64)
    s0 = omega + (alpha + 0.5 * gamma + beta) * presample
    out = np.empty(e.shape[0] + 1)
    out[0] = s0
    if e.shape[0]:
        shock = (alpha + gamma * (e < 0.0)) * (e * e) + omega
        # s_{t+1} = shock_t + beta s_t: a first-order IIR filter whose state before t = 0 is beta s_0.
        out[1:] = lfilter([1.0], [1.0, -beta], shock, zi=np.array([beta * s0]))[0]
    return out


def qlike(forecast_var: Any, true_var: Any) -> float:
    """QLIKE loss ``mean(true / forecast - log(true / forecast) - 1)`` (0 only for perfect forecasts).

    Pairs where either side is NaN are ignored; every remaining value must be positive.
    """
    f = np.asarray(forecast_var, dtype=np.float64).ravel()
    v = np.asarray(true_var, dtype=np.float64).ravel()
    if f.shape != v.shape:
        raise VolError(f"qlike: forecast_var has {f.size} values but true_var has {v.size}")
    keep = ~(np.isnan(f) | np.isnan(v))
    f, v = f[keep], v[keep]
    if f.size == 0:
        raise VolError("qlike: no pair of non-NaN values to score")
    if (f <= 0).any() or (v <= 0).any() or not (np.isfinite(f).all() and np.isfinite(v).all()):
        raise VolError("qlike: variances must be finite and > 0")
    ratio = v / f
    return float(np.mean(ratio - np.log(ratio) - 1.0))


def rolling_std_baseline(returns: pl.DataFrame, window: int = 20) -> pl.DataFrame:
    """The naive forecast: the sample std (ddof 1) of each symbol's last ``window`` returns up to and
    including ``trade_date``, as the vol for the next day. Columns ``symbol, trade_date, vol_forecast``;
    rows are emitted once a full window is available."""
    if window < 2:
        raise VolError(f"rolling_std_baseline: window must be >= 2, got {window}")
    frame = _prepare_returns(returns, "rolling_std_baseline")
    return (
        frame.with_columns(
            pl.col("ret_1d").rolling_std(window, min_samples=window).over("symbol").alias("vol_forecast")
        )
        .drop_nulls("vol_forecast")
        .select("symbol", "trade_date", "vol_forecast")
    )


# --------------------------------------------------------------------------------------------
# The fitted model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FittedVol:
    """Per-symbol fitted parameters (``params``), the symbols that could not be fitted (``failures``:
    symbol, reason, n_obs) and the config. Every input symbol is in exactly one of the two tables."""

    params: pl.DataFrame
    failures: pl.DataFrame
    config: VolConfig

    def forecast(self, returns: pl.DataFrame) -> pl.DataFrame:
        """One-step-ahead vols ``(symbol, trade_date, vol_forecast)`` for every usable return row of a
        fitted symbol: the vol of the *next* day's return given returns up to ``trade_date``.

        Runs ``garch_variance_path`` from the unconditional variance over the returns given (see the
        module docstring); in daily return units. Sorted by symbol, trade_date."""
        frame = _prepare_returns(returns, "forecast").drop_nulls("ret_1d").filter(pl.col("ret_1d").is_finite())
        frame = frame.join(
            self.params.select("symbol", "mu", "omega", "alpha", "gamma", "beta", "persistence"),
            on="symbol",
            how="inner",
        ).sort("symbol", "trade_date")
        if frame.height == 0:
            return pl.DataFrame(schema={**FORECAST_SCHEMA, "trade_date": returns.schema["trade_date"]})
        symbols = frame["symbol"].to_numpy()
        starts = np.flatnonzero(np.r_[True, symbols[1:] != symbols[:-1]])
        ends = np.r_[starts[1:], len(symbols)]
        r = frame["ret_1d"].to_numpy()
        cols = {c: frame[c].to_numpy() for c in ("mu", "omega", "alpha", "gamma", "beta", "persistence")}
        out = np.empty(len(r))
        for a, b in zip(starts, ends, strict=True):
            omega, persistence = cols["omega"][a], cols["persistence"][a]
            path = garch_variance_path(
                r[a:b] - cols["mu"][a],
                omega,
                cols["alpha"][a],
                cols["gamma"][a],
                cols["beta"][a],
                presample=omega / (1.0 - persistence),
            )
            out[a:b] = np.sqrt(path[1:])
        return frame.select("symbol", "trade_date").with_columns(pl.Series("vol_forecast", out))

    def metrics(self) -> dict[str, Any]:
        """A JSON-safe summary (counts, medians of the parameters, failure reasons) for metadata."""
        p = self.params

        def median(col: str) -> float | None:
            value = p[col].median() if p.height else None
            return None if value is None or not math.isfinite(value) else float(value)  # type: ignore[arg-type]

        reasons: dict[str, int] = {}
        for reason in self.failures["reason"].to_list():
            key = reason.split(":", 1)[0]
            reasons[key] = reasons.get(key, 0) + 1
        return {
            "model": self.config.model,
            "dist": self.config.dist,
            "n_symbols": p.height + self.failures.height,
            "n_fitted": p.height,
            "n_failed": self.failures.height,
            "n_warm_started": int(p["warm_started"].sum()) if p.height else 0,
            "failure_reasons": dict(sorted(reasons.items())),
            "median_alpha": median("alpha"),
            "median_gamma": median("gamma"),
            "median_beta": median("beta"),
            "median_nu": median("nu"),
            "median_persistence": median("persistence"),
            "median_uncond_vol": median("uncond_vol"),
            "median_next_vol": median("next_vol"),
            "mean_iterations": float(p["iterations"].mean()) if p.height else None,  # type: ignore[arg-type]
            "last_date": None if not p.height else str(p["last_date"].max()),
        }

    def save(self, directory: Path) -> None:
        """Write ``config.json``, ``params.parquet`` and ``failures.parquet`` into ``directory``
        (deterministic bytes for equal fits, so ``save_artifact`` hashes them stably)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_json(
            directory / "config.json",
            {"format_version": FORMAT_VERSION, "kind": "volatility", "config": self.config.to_params()},
        )
        self.params.write_parquet(directory / "params.parquet", statistics=False)
        self.failures.write_parquet(directory / "failures.parquet", statistics=False)

    @classmethod
    def load(cls, directory: Path) -> FittedVol:
        directory = Path(directory)
        meta = read_json(directory / "config.json")
        check_header(meta, kind="volatility", format_version=FORMAT_VERSION, error=VolError, where=str(directory))
        return cls(
            params=pl.read_parquet(directory / "params.parquet"),
            failures=pl.read_parquet(directory / "failures.parquet"),
            config=VolConfig.from_params(meta["config"]),
        )

    def save_artifact(self, root: Path, name: str = "volatility") -> Path:
        """Publish as the content-addressed artifact ``root/name/<hash>`` and return its path."""
        return save_artifact(Path(root), name, self.save)


def warm_start_fit(models: Path, config: VolConfig, as_of: dt.date, name: str = "volatility") -> FittedVol | None:
    """The published fit a refit on data up to ``as_of`` may warm-start from (``fit_vol(previous=...)``).

    That is the fit in force (``models/name/current.json``), and only if it saw no data after ``as_of``
    (its ``as_of`` is ``<= as_of``): a start from a fit on later data would carry the future into this
    one (through the optimizer's starting point). It must also have been fitted with ``config``.
    None when there is no such fit (none published, a later one in force, or another config)."""
    pointer = Path(models) / name / "current.json"
    if not pointer.exists() or dt.date.fromisoformat(read_json(pointer)["as_of"]) > as_of:
        return None
    previous = FittedVol.load(current_artifact(Path(models), name))
    return previous if previous.config == config else None


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    symbol: str
    y: FloatArray  # daily returns (not scaled)
    o: int
    scale: float
    min_obs: int
    start: FloatArray | None  # arch-scale starting values, or None


def fit_vol(
    returns: pl.DataFrame,
    config: VolConfig,
    previous: FittedVol | None = None,
    *,
    workers: int | None = None,
    start_method: str | None = None,
) -> FittedVol:
    """Fit the configured model to every symbol of ``returns`` (``symbol, trade_date, ret_1d``).

    Null/NaN returns are skipped (a symbol's first return is usually null). ``previous``: warm-start
    each symbol from its parameters there (when it was fitted with the same model). ``workers``:
    None = 2 worker processes from ``PARALLEL_MIN_SYMBOLS`` symbols on when the 1-minute load
    average leaves a core idle, else sequential; 1 forces sequential, 2 forces 2 workers.
    ``start_method``: the workers' multiprocessing start method (default ``START_METHOD``).
    Never raises for one symbol's data: those go to ``failures``."""
    frame = _prepare_returns(returns, "fit_vol")
    all_symbols = frame.get_column("symbol").unique().sort().to_list()
    frame = frame.drop_nulls("ret_1d").filter(pl.col("ret_1d").is_not_nan())
    warm = _warm_starts(previous, config)

    tasks: list[_Task] = []
    dates: dict[str, tuple[Any, Any]] = {}
    for (symbol,), part in frame.partition_by("symbol", as_dict=True, maintain_order=True).items():
        y = part["ret_1d"].to_numpy().astype(np.float64, copy=True)
        dates[str(symbol)] = (part["trade_date"][0], part["trade_date"][-1])
        tasks.append(_Task(str(symbol), y, config.o, config.scale, config.min_obs, warm.get(str(symbol))))

    n_workers = _choose_workers(len(tasks), workers)
    if n_workers <= 1:
        results = [_fit_symbol(t) for t in tasks]
    else:
        results = _fit_parallel(tasks, n_workers, start_method or START_METHOD)

    rows, failures = [], []
    by_symbol = {r["symbol"]: r for r in results}
    for symbol in all_symbols:
        result = by_symbol.get(symbol)
        if result is None:  # every return of the symbol was null/NaN
            failures.append({"symbol": symbol, "reason": "no returns: every ret_1d is null or NaN", "n_obs": 0})
        elif "reason" in result:
            failures.append({"symbol": symbol, "reason": result["reason"], "n_obs": result["n_obs"]})
        else:
            first, last = dates[symbol]
            rows.append({**result, "first_date": first, "last_date": last})
    date_type = returns.schema["trade_date"]
    schema = {**PARAM_SCHEMA, "first_date": date_type, "last_date": date_type}
    return FittedVol(
        params=pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema),
        failures=pl.DataFrame(failures, schema=FAILURE_SCHEMA, orient="row")
        if failures
        else pl.DataFrame(schema=FAILURE_SCHEMA),
        config=config,
    )


def _choose_workers(n_tasks: int, workers: int | None) -> int:
    if workers is not None:
        if workers < 1:
            raise VolError(f"fit_vol: workers must be >= 1, got {workers}")
        return min(workers, MAX_WORKERS, max(n_tasks, 1))
    cores = os.cpu_count() or 1
    if n_tasks < PARALLEL_MIN_SYMBOLS or cores < 2:
        return 1
    # A second worker only helps if a core is free: this process counts ~1 in the load average.
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > cores - 0.5:
        return 1
    return min(MAX_WORKERS, cores)


def _fit_parallel(tasks: list[_Task], n_workers: int, start_method: str) -> list[dict[str, Any]]:
    """Fit in ``n_workers`` processes; longest series first, dealt round-robin into 4 batches per
    worker so the workers finish together."""
    import arch.univariate  # noqa: F401 - import once here, so forked workers inherit it (~3 s each otherwise)

    order = sorted(range(len(tasks)), key=lambda i: -len(tasks[i].y))
    n_batches = min(len(tasks), 4 * n_workers)
    batches = [[tasks[i] for i in order[k::n_batches]] for k in range(n_batches)]
    context = multiprocessing.get_context(start_method)
    with concurrent.futures.ProcessPoolExecutor(max_workers=n_workers, mp_context=context) as pool:
        return [row for batch in pool.map(_fit_batch, batches) for row in batch]


def _fit_batch(tasks: Sequence[_Task]) -> list[dict[str, Any]]:
    return [_fit_symbol(t) for t in tasks]


def _warm_starts(previous: FittedVol | None, config: VolConfig) -> dict[str, FloatArray]:
    """Per symbol, the previous parameters in arch's order and scale (same model only)."""
    if previous is None or previous.config.model != config.model or previous.params.height == 0:
        return {}
    p = previous.params
    s = config.scale
    names = ["alpha", "gamma", "beta"] if config.o else ["alpha", "beta"]
    matrix = np.column_stack(
        [p["mu"].to_numpy() * s, p["omega"].to_numpy() * s * s, *(p[n].to_numpy() for n in names), p["nu"].to_numpy()]
    )
    return {sym: matrix[i].copy() for i, sym in enumerate(p["symbol"].to_list()) if np.isfinite(matrix[i]).all()}


def _fit_symbol(task: _Task) -> dict[str, Any]:
    """Fit one symbol; a dict of parameters, or ``{"symbol", "reason", "n_obs"}`` on failure."""
    y, n = task.y, len(task.y)

    def fail(reason: str) -> dict[str, Any]:
        return {"symbol": task.symbol, "reason": reason, "n_obs": n}

    if n < task.min_obs:
        return fail(f"insufficient history: {n} < min_obs {task.min_obs}")
    if not np.isfinite(y).all():
        return fail(f"non-finite returns: {int((~np.isfinite(y)).sum())} infinite values")
    if float(np.ptp(y)) == 0.0:
        return fail("constant series: zero variance, nothing to model")

    from arch import arch_model  # imported here: arch pulls in statsmodels, scipy.stats, pandas

    model = arch_model(y * task.scale, mean="Constant", vol="GARCH", p=1, o=task.o, q=1, dist="t", rescale=False)
    result, warm_started = None, False
    if task.start is not None:
        try:
            result, rejected = _run_fit(model, task.start)
            warm_started = not rejected and result.convergence_flag == 0
        except Exception:  # noqa: BLE001 - a failed warm start falls back to a cold fit
            warm_started = False
        if not warm_started:
            result = None
    if result is None:
        try:
            result, _ = _run_fit(model, None)
        except Exception as exc:  # noqa: BLE001 - one symbol's arch error is that symbol's failure
            return fail(f"fit error: {type(exc).__name__}: {exc}")

    values = np.asarray(result.params, dtype=np.float64)
    if task.o:
        mu, omega, alpha, gamma, beta, nu = values
    else:
        mu, omega, alpha, beta, nu = values
        gamma = 0.0
    opt = result.optimization_result
    if result.convergence_flag != 0:
        return fail(f"not converged: optimizer flag {result.convergence_flag} ({opt.message})")
    if not (np.isfinite(values).all() and math.isfinite(result.loglikelihood)):
        return fail("non-finite parameters or log-likelihood")
    persistence = alpha + 0.5 * gamma + beta
    if persistence >= 1.0:
        return fail(f"non-stationary: persistence {persistence:.6f} >= 1")
    if omega <= 0.0:
        return fail(f"degenerate: omega {omega:.3g} <= 0")

    s = task.scale
    omega_r, mu_r = omega / (s * s), mu / s
    uncond = omega_r / (1.0 - persistence)
    path = garch_variance_path(y - mu_r, omega_r, alpha, gamma, beta, presample=uncond)
    return {
        "symbol": task.symbol,
        "mu": float(mu_r),
        "omega": float(omega_r),
        "alpha": float(alpha),
        "gamma": float(gamma),
        "beta": float(beta),
        "nu": float(nu),
        "persistence": float(persistence),
        "uncond_vol": float(math.sqrt(uncond)),
        "next_vol": float(math.sqrt(path[-1])),
        "loglik": float(result.loglikelihood + n * math.log(s)),
        "converged": True,
        "iterations": int(getattr(opt, "nit", -1)),
        "func_evals": int(getattr(opt, "nfev", -1)),
        "n_obs": n,
        "warm_started": bool(warm_started),
    }


def _run_fit(model: Any, start: FloatArray | None) -> tuple[Any, bool]:
    """``model.fit`` quietly; returns the result and whether arch rejected ``start``."""
    from arch.utility.exceptions import StartingValueWarning

    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        result = model.fit(disp="off", show_warning=False, starting_values=start)
    rejected = start is not None and any(issubclass(w.category, StartingValueWarning) for w in caught)
    return result, rejected


def _prepare_returns(returns: pl.DataFrame, where: str) -> pl.DataFrame:
    missing = [c for c in RETURN_COLUMNS if c not in returns.columns]
    if missing:
        raise VolError(f"{where}: returns lack columns {missing} (need {list(RETURN_COLUMNS)})")
    if not returns.schema["trade_date"].is_temporal():
        raise VolError(f"{where}: trade_date must be a date, got {returns.schema['trade_date']}")
    frame = returns.select(
        pl.col("symbol").cast(pl.String()), pl.col("trade_date"), pl.col("ret_1d").cast(pl.Float64())
    )
    if frame["symbol"].null_count() or frame["trade_date"].null_count():
        raise VolError(f"{where}: symbol and trade_date must not be null")
    dupes = frame.filter(pl.struct("symbol", "trade_date").is_duplicated())
    if dupes.height:
        shown = ", ".join(f"{s} {d}" for s, d in dupes.select("symbol", "trade_date").unique().head(5).iter_rows())
        raise VolError(f"{where}: duplicate (symbol, trade_date) rows, e.g. {shown}")
    return frame.sort("symbol", "trade_date")


# --------------------------------------------------------------------------------------------
# Plot (for Dagster metadata)
# --------------------------------------------------------------------------------------------


def plot_vol_forecast(
    forecast: pl.DataFrame,
    returns: pl.DataFrame,
    symbol: str,
    path: Path,
    baseline: pl.DataFrame | None = None,
) -> Path:
    """PNG of one symbol: |return| on each day against the vol forecast made the day before (and the
    baseline's, if given). Returns ``path``. Uses matplotlib's object API (no pyplot, no global state)."""
    from matplotlib.figure import Figure

    realized = _prepare_returns(returns, "plot_vol_forecast").filter(pl.col("symbol") == symbol)
    realized = realized.drop_nulls("ret_1d").sort("trade_date")
    if realized.height == 0:
        raise VolError(f"plot_vol_forecast: no returns for symbol {symbol!r}")

    def target_dated(f: pl.DataFrame) -> pl.DataFrame:
        # the forecast made at t is for the next row's date
        joined = realized.select("trade_date").join(
            f.filter(pl.col("symbol") == symbol).select("trade_date", "vol_forecast"), on="trade_date", how="left"
        )
        return joined.with_columns(pl.col("vol_forecast").shift(1))

    fig = Figure(figsize=(10, 4), dpi=100)
    ax = fig.add_subplot()
    days = realized["trade_date"].to_list()
    ax.plot(days, np.abs(realized["ret_1d"].to_numpy()), ".", ms=2, color="0.6", label="|return|")
    ax.plot(days, target_dated(forecast)["vol_forecast"].to_numpy(), lw=1.0, color="C0", label="GARCH forecast")
    if baseline is not None:
        ax.plot(days, target_dated(baseline)["vol_forecast"].to_numpy(), lw=0.8, color="C1", label="baseline")
    ax.set_title(f"{symbol}: one-day-ahead volatility vs |return|")
    ax.set_ylabel("daily return")
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return save_png(fig, path)
