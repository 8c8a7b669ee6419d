"""Strategy ensemble: momentum, mean reversion and the ML signal, weighted by Thompson sampling.

Each strategy turns a row into a direction (``strategy_signals``); its probability of *up* is its
posterior hit rate when it says up, one minus that when it says down, and 0.5 when it is flat:

    p_s = 0.5 + sign_s (h_s - 0.5)        (ml: its own calibrated probability)

The ensemble probability is ``sum_s w_s p_s`` with the Thompson weights ``w_s`` (the share of posterior
draws each strategy wins). ``fit_ensemble`` replays the walk-forward out-of-sample rows date by date:
the probabilities of a date use only the outcomes of earlier dates, then that date's outcomes update
the posteriors — so its scores are out-of-sample too, and the final state is what goes live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mem_pipeline.models.scoring import expected_calibration_error, log_loss
from mem_pipeline.models.signal_columns import DATE, LABEL, RETURN, SignalError
from mem_pipeline.models.strategies import STRATEGIES, ThompsonAllocator, strategy_outcomes, strategy_signals

N_DRAWS = 2000


@dataclass(frozen=True)
class Ensemble:
    """Thompson state (Beta posteriors of each strategy's hit rate) and the weights it implies."""

    strategies: tuple[str, ...]
    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    weights: dict[str, float]
    seed: int
    n_updates: int

    @property
    def hit_rates(self) -> dict[str, float]:
        return {s: a / (a + b) for s, a, b in zip(self.strategies, self.alpha, self.beta, strict=True)}

    def probability(self, frame: pl.DataFrame, p_ml: Any) -> np.ndarray:
        """Ensemble P(up) per row of ``frame`` (which needs the strategy feature columns)."""
        return _probability(
            strategy_signals(frame, p_ml), np.asarray(p_ml, dtype=np.float64), self.weights, self.hit_rates
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "strategies": list(self.strategies),
            "alpha": list(self.alpha),
            "beta": list(self.beta),
            "weights": dict(self.weights),
            "seed": self.seed,
            "n_updates": self.n_updates,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Ensemble:
        return cls(
            strategies=tuple(d["strategies"]),
            alpha=tuple(map(float, d["alpha"])),
            beta=tuple(map(float, d["beta"])),
            weights={k: float(v) for k, v in d["weights"].items()},
            seed=int(d["seed"]),
            n_updates=int(d["n_updates"]),
        )


def _probability(
    signals: pl.DataFrame, p_ml: np.ndarray, weights: Mapping[str, float], hit_rates: Mapping[str, float]
) -> np.ndarray:
    total = np.zeros(signals.height)
    for name, w in weights.items():
        if name == "ml":
            p = p_ml
        else:
            p = 0.5 + np.sign(signals[name].to_numpy()) * (hit_rates[name] - 0.5)
        total += w * p
    return total


def fit_ensemble(oos: pl.DataFrame, p_column: str, seed: int = 0) -> tuple[Ensemble, dict[str, Any], np.ndarray]:
    """Replay ``oos`` (walk-forward rows with ``trade_date``, ``up_1d``, ``fwd_ret_1d``, the strategy
    feature columns and ``p_column``) in date order; return the final state, the ensemble's OOS scores and
    its OOS probabilities (rows of ``oos`` sorted by date, stable)."""
    needed = [DATE, LABEL, RETURN, p_column, "momentum_60_5", "reversal_5d"]
    missing = [c for c in needed if c not in oos.columns]
    if missing:
        raise SignalError(f"fit_ensemble: missing columns {missing}")
    oos = oos.sort(DATE, maintain_order=True)
    allocator = ThompsonAllocator(STRATEGIES, seed=seed)
    p_all = np.empty(oos.height)
    offset = 0
    for (_day,), block in oos.group_by([DATE], maintain_order=True):
        p_ml = block[p_column].to_numpy()
        signals = strategy_signals(block, p_ml)
        weights = allocator.weights(N_DRAWS)
        p_all[offset : offset + block.height] = _probability(signals, p_ml, weights, allocator.posterior_mean())
        offset += block.height
        allocator.update(strategy_outcomes(signals, block[RETURN].to_numpy()))
    y = oos[LABEL].cast(pl.Float64).to_numpy()
    final = Ensemble(
        strategies=allocator.strategies,
        alpha=tuple(map(float, allocator.alpha)),
        beta=tuple(map(float, allocator.beta)),
        weights=allocator.weights(N_DRAWS),
        seed=seed,
        n_updates=allocator.n_updates,
    )
    scores = {
        "log_loss_ensemble": log_loss(p_all, y),
        "ece_ensemble": expected_calibration_error(p_all, y),
        "weights": final.weights,
        "hit_rates": final.hit_rates,
    }
    return final, scores, p_all
