"""The signal each backtest variant decides with: the live model read with the variant's options, the static
system's FIFO logistic model, or the synthetic market's oracle. Each has ``predict_signal(frame)`` and
``payoff_ratio``, which is all ``gather_inputs`` reads of a signal model.

The oracle on day ``t`` knows the true regime ``s_t`` and everything the generator drew up to ``t``. Tomorrow's
log return of symbol ``i`` has conditional mean ``beta_i · sum_j P(j | s_t) mu_j + m_{i,t+1}`` (the regime
chain's next-day mix of factor drifts plus the true reversal alpha, ``m_{t+1} = -reversal · e_t``) and variance
``beta_i² · sum_j P(j | s_t) sigma_j² + sector var + h_{i,t+1}`` (GARCH's ``h_{t+1}`` is known at ``t``); its
``P(up)`` is the normal approximation ``Phi(mean / sd)`` (the shocks are Student-t with unit variance, so the
tails differ, the sign probability barely does).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import norm

from mem_pipeline.backtest.simulator import BacktestError
from mem_pipeline.ingest.sources.synthetic import SyntheticTruth
from mem_pipeline.models.signal import FittedSignal, LogisticBaseline, feature_matrix, fit_logistic
from mem_pipeline.models.signal_columns import KNOWN_DATE, LABEL


@dataclass(frozen=True)
class VariantSignal:
    """The live fitted model read with an ablation's options (``FittedSignal.predict_signal``)."""

    fitted: FittedSignal
    calibrated: bool = True
    ensemble: bool = True

    @property
    def payoff_ratio(self) -> float:
        return self.fitted.payoff_ratio

    def predict_signal(self, frame: pl.DataFrame) -> pl.Series:
        return self.fitted.predict_signal(frame, calibrated=self.calibrated, ensemble=self.ensemble)


@dataclass(frozen=True)
class FifoLogistic:
    """The static system's model: a logistic regression on the newest ``rows`` labelled rows (its FIFO memory),
    probabilities used as they come (no calibration, no candidate selection, no ensemble)."""

    columns: tuple[str, ...]
    model: LogisticBaseline
    rows: int
    payoff_ratio: float = 1.0

    @classmethod
    def fit(cls, frame: pl.DataFrame, columns: Sequence[str], rows: int, c: float = 1.0) -> FifoLogistic:
        """Fit on the newest ``rows`` rows of a ``training_frame`` (by the date their outcome became known)."""
        newest = frame.sort(KNOWN_DATE, "symbol").tail(rows)
        y = newest[LABEL].cast(pl.Float64).to_numpy()
        if newest.height < 2 or len(np.unique(y)) < 2:
            raise BacktestError(f"static model: {newest.height} labelled rows with one class cannot be fitted")
        return cls(tuple(columns), fit_logistic(feature_matrix(newest, columns, "static model"), y, c), newest.height)

    def predict_signal(self, frame: pl.DataFrame) -> pl.Series:
        if frame.height == 0:
            return pl.Series("p_up", [], dtype=pl.Float64())
        return pl.Series(
            "p_up", self.model.predict_proba(feature_matrix(frame, self.columns, "static model")), dtype=pl.Float64()
        )


class Oracle:
    """The synthetic market's ground truth (its ``SyntheticTruth`` tables, as ingest saved them) as a signal and
    a regime filter (see the module docstring)."""

    def __init__(self, truth: SyntheticTruth) -> None:
        config = truth.config
        regimes = truth.regimes.sort("date")
        self.dates: list[dt.date] = regimes["date"].to_list()
        self.index = {d: t for t, d in enumerate(self.dates)}
        self.regime = regimes["regime"].to_numpy().astype(np.int64)
        self.k = len(config.regimes.factor_mean)
        transition = np.asarray(config.regimes.transition, dtype=np.float64)
        next_regime = transition[self.regime]  # (T, K): P(s_{t+1} = j | s_t)
        self.factor_mean = next_regime @ np.asarray(config.regimes.factor_mean, dtype=np.float64)
        self.factor_var = next_regime @ np.asarray(config.regimes.factor_vol, dtype=np.float64) ** 2
        self.sector_var = config.sectors.vol**2 if config.sectors.n_sectors else 0.0
        truth_rows = truth.conditional_variance

        def wide(column: str) -> np.ndarray:
            frame = truth_rows.pivot(on="symbol", index="date", values=column, sort_columns=True).sort("date")
            return frame.drop("date").to_numpy().astype(np.float64)

        self.symbols = sorted(set(truth_rows["symbol"].to_list()))
        self.column = {s: i for i, s in enumerate(self.symbols)}
        self.alpha_mean, self.idio_var = wide("alpha_mean"), wide("idio_var")
        self.beta = truth.symbols.sort("symbol")["beta"].to_numpy().astype(np.float64)
        self.payoff_ratio = 1.0
        self.day: dt.date | None = None

    def at(self, day: dt.date) -> Oracle:
        """Set the day whose truth ``predict_signal`` reads (the replay calls this before each decision)."""
        if day not in self.index:
            raise BacktestError(f"oracle: {day} is not a day of the synthetic market")
        self.day = day
        return self

    def regime_probabilities(self, day: dt.date) -> pl.DataFrame:
        """``trade_date, p_regime_*``: probability 1 on the true regime of ``day``."""
        onehot = np.eye(self.k)[self.regime[self.index[day]]]
        return pl.DataFrame({"trade_date": [day], **{f"p_regime_{j}": [float(onehot[j])] for j in range(self.k)}})

    def predict_signal(self, frame: pl.DataFrame) -> pl.Series:
        if self.day is None:
            raise BacktestError("oracle: call at(day) before predict_signal")
        t = self.index[self.day]
        if t + 1 >= len(self.dates):  # the market's last day: there is no tomorrow to know
            return pl.Series("p_up", np.full(frame.height, 0.5), dtype=pl.Float64())
        missing = [s for s in frame["symbol"].to_list() if s not in self.column]
        if missing:
            raise BacktestError(f"oracle: symbols not in the synthetic market: {missing[:10]}")
        cols = np.array([self.column[s] for s in frame["symbol"].to_list()], dtype=np.int64)
        beta = self.beta[cols]
        mean = beta * self.factor_mean[t] + self.alpha_mean[t + 1, cols]
        var = beta**2 * self.factor_var[t] + self.sector_var + self.idio_var[t + 1, cols]
        return pl.Series("p_up", norm.cdf(mean / np.sqrt(var)), dtype=pl.Float64())
