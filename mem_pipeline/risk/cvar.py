"""Value at risk and conditional value at risk (expected shortfall) of scenario losses.

Losses are positive numbers (a loss of 3 is -3 of P&L). With ``T`` equally weighted scenarios and
level ``alpha`` (0.975: the worst 2.5%):

* ``VaR_alpha`` is the lower ``alpha``-quantile of the losses: the ``k``-th smallest, ``k = ceil(alpha T)``.
* ``CVaR_alpha = VaR + sum_t (L_t - VaR)^+ / ((1 - alpha) T)`` — Rockafellar & Uryasev's function
  ``F(zeta) = zeta + E[(L - zeta)^+] / (1 - alpha)`` evaluated at its minimiser ``zeta = VaR``, so it
  *is* ``min_zeta F``. When ``(1 - alpha) T`` is a whole number it is the mean of the worst ``(1 - alpha) T``
  losses; otherwise the quantile's atom is weighted fractionally (Acerbi & Tasche), which keeps CVaR
  coherent — in particular positively homogeneous, ``CVaR(c L) = c CVaR(L)`` for ``c >= 0``, which the
  limits use to scale a book onto its budget exactly.

Filtered historical simulation (Barone-Adesi et al.): each symbol's past log returns are divided by
the one-step vol forecast made the day before each return (the GARCH conditional vol), giving roughly
i.i.d. standardized shocks that keep the empirical tails and cross-sectional dependence of the same day;
they are multiplied by today's forecast for tomorrow. A calm history thus does not understate risk in
a turbulent market, nor the other way round.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from mem_pipeline.risk.config import RiskError

FloatArray = NDArray[np.float64]


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise RiskError(f"cvar: alpha must be in (0, 1), got {alpha}")


def tail_index(alpha: float, n: int) -> int:
    """0-based index of ``VaR_alpha`` among ``n`` sorted losses: ``ceil(alpha n) - 1`` (guarding 0.975*200)."""
    return min(max(math.ceil(alpha * n - 1e-9), 1), n) - 1


def var_cvar(losses: FloatArray, alpha: float) -> tuple[FloatArray, FloatArray]:
    """``(VaR, CVaR)`` of each column of ``losses`` (shape ``(T,)`` or ``(T, n)``; scenarios along axis 0)."""
    _check_alpha(alpha)
    losses = np.asarray(losses, dtype=np.float64)
    t = losses.shape[0]
    if t == 0:
        raise RiskError("cvar: no scenarios")
    k = tail_index(alpha, t)
    var = np.partition(losses, k, axis=0)[k]
    excess = np.maximum(losses - var, 0.0).sum(axis=0)
    return var, var + excess / ((1.0 - alpha) * t)


def cvar(losses: FloatArray, alpha: float) -> float:
    """CVaR of one loss vector (see the module docstring)."""
    return float(var_cvar(np.asarray(losses, dtype=np.float64).ravel(), alpha)[1])


def ru_objective(zeta: float, losses: FloatArray, alpha: float) -> float:
    """Rockafellar–Uryasev ``F(zeta) = zeta + mean((L - zeta)^+) / (1 - alpha)``; its minimum is CVaR."""
    _check_alpha(alpha)
    losses = np.asarray(losses, dtype=np.float64)
    return float(zeta + np.maximum(losses - zeta, 0.0).mean() / (1.0 - alpha))


def gaussian_cvar(sigma: FloatArray | float, alpha: float) -> FloatArray | float:
    """CVaR of a zero-mean normal loss with standard deviation ``sigma``: ``sigma phi(z_alpha) / (1 - alpha)``."""
    _check_alpha(alpha)
    dist = NormalDist()
    return np.asarray(sigma, dtype=np.float64) * (dist.pdf(dist.inv_cdf(alpha)) / (1.0 - alpha))


def fhs_scenarios(log_returns: FloatArray, past_vol: FloatArray, next_vol: FloatArray) -> FloatArray:
    """Filtered-historical-simulation log returns, shape ``(T, n)``.

    ``past_vol[t, i]`` is the forecast of the vol of ``log_returns[t, i]`` made the day before;
    ``next_vol[i]`` today's forecast for tomorrow. A symbol without forecasts (NaN in ``next_vol``) keeps
    its raw returns (plain historical simulation); a missing single ``past_vol`` or return gives a 0 shock.
    """
    log_returns = np.asarray(log_returns, dtype=np.float64)
    past_vol = np.asarray(past_vol, dtype=np.float64)
    next_vol = np.asarray(next_vol, dtype=np.float64)
    if log_returns.shape != past_vol.shape or log_returns.shape[1:] != next_vol.shape:
        raise RiskError(
            f"fhs_scenarios: shapes differ: returns {log_returns.shape}, past vol {past_vol.shape}, "
            f"next vol {next_vol.shape}"
        )
    if (past_vol <= 0).any() or (next_vol <= 0).any():
        raise RiskError("fhs_scenarios: vol forecasts must be > 0")
    with np.errstate(invalid="ignore"):
        shocks = log_returns / past_vol
    shocks = np.where(np.isfinite(shocks), shocks, 0.0)
    has_vol = np.isfinite(next_vol)
    raw = np.where(np.isfinite(log_returns), log_returns, 0.0)
    return np.where(has_vol, shocks * np.where(has_vol, next_vol, 1.0), raw)


def portfolio_cvar(scenario_returns: FloatArray, notionals: FloatArray, alpha: float) -> float:
    """CVaR in account currency of a book of signed ``notionals`` (n,) over simple-return scenarios (T, n)."""
    losses = -(np.asarray(scenario_returns, dtype=np.float64) @ np.asarray(notionals, dtype=np.float64))
    return cvar(losses, alpha)
