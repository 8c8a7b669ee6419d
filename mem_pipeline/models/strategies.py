"""Simple strategies beside the ML signal, and a Thompson-sampling allocator over them.

``strategy_signals`` turns each row into one position per strategy (momentum, mean reversion, the ML
signal); ``strategy_outcomes`` scores those positions against realized returns as wins and losses;
``ThompsonAllocator`` keeps a Beta posterior of each strategy's hit rate and weights the strategies
by the share of posterior draws each one wins; ``ensemble_positions`` combines positions by weights.

Determinism: the Thompson allocator draws from a generator seeded by ``(seed, number of updates)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from mem_pipeline.models.signal_columns import SignalError, require_columns

STRATEGIES: tuple[str, ...] = ("momentum", "mean_reversion", "ml")


def strategy_signals(
    frame: pl.DataFrame,
    p_up: Sequence[float] | np.ndarray | pl.Series,
    momentum_column: str = "momentum_60_5",
    reversal_column: str = "reversal_5d",
) -> pl.DataFrame:
    """Per-row strategy positions: ``momentum`` = sign(momentum feature), ``mean_reversion`` = sign(reversal
    feature) (the feature is taken as already pointing the reversal way), ``ml`` = calibrated p − 0.5."""
    require_columns(frame, [momentum_column, reversal_column], "strategy_signals")
    p = np.asarray(p_up, dtype=np.float64)
    if p.shape != (frame.height,):
        raise SignalError(f"strategy_signals: p_up needs {frame.height} values, got {p.shape}")
    return pl.DataFrame(
        {
            "momentum": np.sign(np.nan_to_num(frame[momentum_column].cast(pl.Float64).to_numpy())),
            "mean_reversion": np.sign(np.nan_to_num(frame[reversal_column].cast(pl.Float64).to_numpy())),
            "ml": p - 0.5,
        }
    )


def strategy_outcomes(
    signals: Mapping[str, Any] | pl.DataFrame, realized: Sequence[float] | np.ndarray
) -> dict[str, np.ndarray]:
    """Win (True) / loss (False) per strategy and row: sign(position) × realized return > 0. Rows where
    the position or the return is 0 or NaN are no trial and are left out."""
    r = np.asarray(realized, dtype=np.float64)
    names = signals.columns if isinstance(signals, pl.DataFrame) else list(signals)
    out = {}
    for name in names:
        s = np.sign(np.asarray(signals[name], dtype=np.float64))
        pnl = s * r
        valid = np.isfinite(pnl) & (pnl != 0)
        out[name] = pnl[valid] > 0
    return out


class ThompsonAllocator:
    """Beta-Bernoulli posterior per strategy over wins; weights = share of posterior draws each strategy wins.

    ``weights`` is a pure function of the state: its generator is seeded by ``(seed, n_updates)``.
    """

    def __init__(self, strategies: Sequence[str], seed: int = 0, prior_alpha: float = 1.0, prior_beta: float = 1.0):
        if not strategies or len(set(strategies)) != len(strategies):
            raise SignalError("ThompsonAllocator: needs distinct strategy names")
        if prior_alpha <= 0 or prior_beta <= 0:
            raise SignalError("ThompsonAllocator: prior_alpha and prior_beta must be > 0")
        self.strategies = tuple(strategies)
        self.seed = int(seed)
        self.alpha = np.full(len(strategies), float(prior_alpha))
        self.beta = np.full(len(strategies), float(prior_beta))
        self.n_updates = 0

    def update(self, outcomes: Mapping[str, bool | int | Sequence[bool] | np.ndarray]) -> None:
        """Add wins to α and losses to β; ``outcomes`` maps a strategy to one outcome or many."""
        unknown = set(outcomes) - set(self.strategies)
        if unknown:
            raise SignalError(f"ThompsonAllocator.update: unknown strategies {sorted(unknown)}")
        for name, result in outcomes.items():
            i = self.strategies.index(name)
            wins = np.atleast_1d(np.asarray(result, dtype=bool))
            self.alpha[i] += wins.sum()
            self.beta[i] += (~wins).sum()
        self.n_updates += 1

    def weights(self, n_draws: int = 2000) -> dict[str, float]:
        rng = np.random.default_rng([self.seed, self.n_updates])
        draws = rng.beta(self.alpha, self.beta, size=(n_draws, len(self.strategies)))
        counts = np.bincount(draws.argmax(axis=1), minlength=len(self.strategies))
        return {name: float(c / n_draws) for name, c in zip(self.strategies, counts, strict=True)}

    def posterior_mean(self) -> dict[str, float]:
        return {n: float(a / (a + b)) for n, a, b in zip(self.strategies, self.alpha, self.beta, strict=True)}


def ensemble_positions(signals: Mapping[str, Any] | pl.DataFrame, weights: Mapping[str, float]) -> np.ndarray:
    """Σ_s weight_s × signal_s per row (strategies missing from ``weights`` get weight 0)."""
    names = signals.columns if isinstance(signals, pl.DataFrame) else list(signals)
    missing = set(weights) - set(names)
    if missing:
        raise SignalError(f"ensemble_positions: weights for unknown strategies {sorted(missing)}")
    total = None
    for name, wt in weights.items():
        s = np.nan_to_num(np.asarray(signals[name], dtype=np.float64)) * float(wt)
        total = s if total is None else total + s
    if total is None:
        n = signals.height if isinstance(signals, pl.DataFrame) else len(next(iter(signals.values()), []))
        return np.zeros(n)
    return total
