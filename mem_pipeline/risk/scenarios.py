"""Return scenarios for CVaR and covariance from the long tables the pipeline already has.

Inputs: daily log returns ``(symbol, trade_date, ret_1d)`` (``int_bars__returns``) and one-step vol
forecasts ``(symbol, trade_date, vol_forecast)`` (the ``vol_forecasts`` asset: the forecast at ``d`` is the
vol of the return of the next trading day). Only rows dated on or before the decision date may be passed;
anything later raises (a lookahead bug upstream, not something to filter silently).

The window is the last ``lookback_days`` trading dates of the returns table. A symbol's return on date
``t`` is standardised by its forecast made on the trading date before ``t`` (so the window reads one more
date of forecasts); symbols with fewer than ``min_history`` standardisable returns, or without a forecast,
use plain historical returns. Missing returns inside the window count as a 0 return (a 0 shock).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from mem_pipeline.risk.config import RiskConfig, RiskError
from mem_pipeline.risk.covariance import ledoit_wolf_covariance, portfolio_vol
from mem_pipeline.risk.cvar import fhs_scenarios, gaussian_cvar, portfolio_cvar, tail_index, var_cvar

FloatArray = NDArray[np.float64]
RETURN_COLUMNS = ("symbol", "trade_date", "ret_1d")
VOL_COLUMNS = ("symbol", "trade_date", "vol_forecast")


def require_columns(frame: pl.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RiskError(f"{where}: missing columns {missing} (has {frame.columns})")


def check_not_after(frame: pl.DataFrame, column: str, decision_date: dt.date, where: str) -> None:
    """Raise if any row of ``frame`` is dated after the decision date (lookahead)."""
    if frame.height == 0:
        return
    if not frame.schema[column].is_temporal():
        raise RiskError(f"{where}: {column} must be a date, got {frame.schema[column]}")
    latest = frame[column].max()
    if latest is not None and latest > decision_date:  # type: ignore[operator]
        n = frame.filter(pl.col(column) > decision_date).height
        raise RiskError(
            f"{where}: {n} rows dated after the decision date {decision_date} (latest {latest}); "
            "a decision may only read data up to its own date"
        )


@dataclass(frozen=True, eq=False)
class ScenarioSet:
    """Scenario returns of ``symbols`` (columns) over ``dates`` (rows)."""

    symbols: tuple[str, ...]
    dates: tuple[dt.date, ...]
    log_returns: FloatArray  # (T, n) raw log returns, NaN where missing
    simple_returns: FloatArray  # (T, n) scenario simple returns (FHS or historical), finite
    next_vol: FloatArray  # (n,) today's forecast for tomorrow, NaN where none
    n_valid: NDArray[np.int64]  # (n,) finite returns in the window
    filtered: NDArray[np.bool_]  # (n,) FHS applied (else plain historical)


def _scatter(
    frame: pl.DataFrame, value: str, dates: Sequence[dt.date], symbols: Sequence[str], dtype: pl.DataType
) -> FloatArray:
    out = np.full((len(dates), len(symbols)), np.nan)
    if not dates or not symbols:
        return out
    rows = pl.DataFrame(
        {"trade_date": list(dates), "_row": np.arange(len(dates))}, schema_overrides={"trade_date": dtype}
    )
    cols = pl.DataFrame({"symbol": list(symbols), "_col": np.arange(len(symbols))})
    hits = frame.join(rows, on="trade_date", how="inner").join(cols, on="symbol", how="inner")
    values = hits[value].cast(pl.Float64).to_numpy()
    out[hits["_row"].to_numpy(), hits["_col"].to_numpy()] = values
    return out


def scenario_window(
    returns: pl.DataFrame, vol_forecasts: pl.DataFrame | None, config: RiskConfig
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The rows of ``returns`` and ``vol_forecasts`` that ``build_scenarios`` reads: those dated on or after the
    first of the last ``lookback_days + 1`` dates with a finite return. Cutting the rest changes nothing: older
    returns are outside the window, and a symbol whose latest forecast is older has no standardisable return in
    it (so no FHS either)."""
    require_columns(returns, RETURN_COLUMNS, "returns")
    finite = returns.filter(pl.col("ret_1d").is_not_null() & pl.col("ret_1d").is_finite())
    dates = finite["trade_date"].unique().sort()
    if dates.len() <= config.lookback_days + 1:
        return returns, vol_forecasts
    first = dates[-(config.lookback_days + 1)]
    kept = returns.filter(pl.col("trade_date") >= first)
    return kept, vol_forecasts.filter(pl.col("trade_date") >= first) if vol_forecasts is not None else None


def build_scenarios(
    returns: pl.DataFrame,
    vol_forecasts: pl.DataFrame | None,
    symbols: Sequence[str],
    decision_date: dt.date,
    config: RiskConfig,
) -> ScenarioSet:
    """The scenario matrix for ``symbols`` at ``decision_date`` (see the module docstring)."""
    require_columns(returns, RETURN_COLUMNS, "returns")
    check_not_after(returns, "trade_date", decision_date, "returns")
    returns = returns.select(
        pl.col("symbol").cast(pl.String), pl.col("trade_date"), pl.col("ret_1d").cast(pl.Float64)
    ).filter(pl.col("ret_1d").is_not_null() & pl.col("ret_1d").is_finite())
    if returns.select(pl.struct("symbol", "trade_date").is_duplicated().any()).item():
        raise RiskError("returns: duplicate (symbol, trade_date) rows")
    date_type = returns.schema["trade_date"]
    all_dates = returns["trade_date"].unique().sort().to_list()
    extended = all_dates[-(config.lookback_days + 1) :]
    window = extended[1:] if len(extended) > config.lookback_days else extended
    previous = extended[:-1] if len(extended) > config.lookback_days else [None, *extended[:-1]]
    if len(window) < config.min_history:
        raise RiskError(
            f"returns: {len(window)} trading dates up to {decision_date}, need at least "
            f"risk.min_history={config.min_history} for CVaR and covariance"
        )
    symbols = list(symbols)
    log_returns = _scatter(returns, "ret_1d", window, symbols, date_type)
    n_valid = np.isfinite(log_returns).sum(axis=0).astype(np.int64)

    next_vol = np.full(len(symbols), np.nan)
    past_vol = np.full_like(log_returns, np.nan)
    if vol_forecasts is not None and config.cvar_method == "fhs":
        require_columns(vol_forecasts, VOL_COLUMNS, "vol_forecasts")
        check_not_after(vol_forecasts, "trade_date", decision_date, "vol_forecasts")
        vols = vol_forecasts.select(
            pl.col("symbol").cast(pl.String), pl.col("trade_date"), pl.col("vol_forecast").cast(pl.Float64)
        ).filter(pl.col("vol_forecast").is_finite() & (pl.col("vol_forecast") > 0))
        latest = vols.sort("trade_date").group_by("symbol").last()
        lookup = dict(zip(latest["symbol"].to_list(), latest["vol_forecast"].to_list(), strict=True))
        next_vol = np.array([lookup.get(s, np.nan) for s in symbols], dtype=np.float64)
        known = [d for d in previous if d is not None]
        grid = _scatter(vols, "vol_forecast", known, symbols, date_type)
        past_vol[len(previous) - len(known) :] = grid
        standardisable = (np.isfinite(log_returns) & np.isfinite(past_vol)).sum(axis=0)
        next_vol = np.where(standardisable >= config.min_history, next_vol, np.nan)
    log_scenarios = fhs_scenarios(log_returns, past_vol, next_vol)
    return ScenarioSet(
        symbols=tuple(symbols),
        dates=tuple(window),
        log_returns=log_returns,
        simple_returns=np.expm1(log_scenarios),
        next_vol=next_vol,
        n_valid=n_valid,
        filtered=np.isfinite(next_vol),
    )


@dataclass(frozen=True, eq=False)
class RiskModel:
    """Portfolio risk of a book of signed notionals: the larger of the scenario CVaR and the CVaR of a
    normal with the Ledoit–Wolf covariance of the same scenarios.

    The scenario CVaR keeps fat tails and the joint behaviour of the worst days; with fewer days than
    symbols, though, it can call a long-short book that merely fits the sample "riskless". The
    shrunk-covariance CVaR cannot be gamed that way. Both are positively homogeneous, so the maximum is too.
    """

    scenarios: FloatArray  # (T, n) simple returns
    covariance: FloatArray  # (n, n) Ledoit–Wolf of ``scenarios``
    shrinkage: float
    alpha: float

    @classmethod
    def from_scenarios(cls, scenarios: ScenarioSet, alpha: float) -> RiskModel:
        x = scenarios.simple_returns
        if x.shape[1] == 0:
            return cls(x, np.zeros((0, 0)), 0.0, alpha)
        covariance, shrinkage = ledoit_wolf_covariance(x)
        return cls(x, covariance, shrinkage, alpha)

    def historical_cvar(self, notionals: FloatArray) -> float:
        return portfolio_cvar(self.scenarios, notionals, self.alpha) if self.scenarios.shape[1] else 0.0

    def gaussian_cvar(self, notionals: FloatArray) -> float:
        if not self.scenarios.shape[1]:
            return 0.0
        return float(gaussian_cvar(portfolio_vol(self.covariance, notionals), self.alpha))

    def cvar(self, notionals: FloatArray) -> float:
        return max(self.historical_cvar(notionals), self.gaussian_cvar(notionals))

    def symbol_cvar(self, notionals: FloatArray) -> FloatArray:
        """Per symbol, the scenario CVaR of its own signed position alone (in account currency)."""
        w = np.asarray(notionals, dtype=np.float64)
        if not self.scenarios.shape[1]:
            return np.zeros(0)
        long_cvar = var_cvar(-self.scenarios, self.alpha)[1]
        short_cvar = var_cvar(self.scenarios, self.alpha)[1]
        return np.where(w >= 0, long_cvar * w, short_cvar * -w)


class IncrementalCVaR:
    """``RiskModel.cvar`` of a book that changes one position at a time, without recomputing it whole.

    It keeps the scenario P&L vector ``R w`` (T,) and, for the Ledoit–Wolf normal, ``S w`` (n,) and the
    quadratic form ``w' S w``. Moving position ``i`` by ``d`` (currency) changes them by ``d R[:, i]``,
    ``d S[:, i]`` and ``2 d (S w)_i + d^2 S_ii``: asking for the CVaR after a move costs O(T) (a partition
    of T losses), accepting it O(T + n) — instead of O(T n + n^2) for a full ``RiskModel.cvar``. The
    running sums drift by rounding only (relative ~1e-15 per move); callers re-check the final book whole.
    """

    def __init__(self, model: RiskModel, notionals: FloatArray) -> None:
        w = np.asarray(notionals, dtype=np.float64)
        self._columns = np.ascontiguousarray(model.scenarios.T)  # (n, T): one contiguous row per symbol
        self._covariance = model.covariance
        self._pnl = model.scenarios @ w
        self._cov_w = model.covariance @ w
        self._quad = float(w @ self._cov_w)
        t = model.scenarios.shape[0]
        self._k = tail_index(model.alpha, t)
        self._tail_weight = 1.0 / ((1.0 - model.alpha) * t)
        self._normal_factor = float(gaussian_cvar(1.0, model.alpha))

    def _scenario_cvar(self, pnl: FloatArray) -> float:
        losses = -pnl
        var = float(np.partition(losses, self._k)[self._k])
        return var + float(np.maximum(losses - var, 0.0).sum()) * self._tail_weight

    def _quad_after(self, i: int, d: float) -> float:
        return self._quad + 2.0 * d * float(self._cov_w[i]) + d * d * float(self._covariance[i, i])

    def gaussian_cvar_after(self, i: int, d: float) -> float:
        """The Ledoit–Wolf normal CVaR if position ``i`` moved by ``d`` (O(1))."""
        return float(np.sqrt(max(self._quad_after(i, d), 0.0))) * self._normal_factor

    def cvar_after(self, i: int, d: float) -> float:
        """``RiskModel.cvar`` of the book if position ``i`` moved by ``d`` (the book itself is unchanged)."""
        return max(self._scenario_cvar(self._pnl + d * self._columns[i]), self.gaussian_cvar_after(i, d))

    def move(self, i: int, d: float) -> None:
        """Move position ``i`` by ``d``."""
        self._quad = self._quad_after(i, d)
        self._pnl += d * self._columns[i]
        self._cov_w += d * self._covariance[i]  # row i == column i (symmetric)
