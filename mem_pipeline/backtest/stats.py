"""Honest statistics of a backtest's returns.

- Performance: CAGR, annualized volatility, Sharpe, Sortino, maximum drawdown, Calmar.
- ``probabilistic_sharpe_ratio`` (Bailey & López de Prado, "The Sharpe Ratio Efficient Frontier", 2012): the
  probability that the true Sharpe ratio exceeds a benchmark, given the sample's length, skewness and kurtosis:
  ``PSR = Φ((SR − SR*)·√(n − 1) / √(1 − γ₃·SR + (γ₄ − 1)/4·SR²))`` with per-period SR and Pearson kurtosis γ₄.
- ``deflated_sharpe_ratio`` (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014): the PSR against the
  Sharpe ratio the best of N independent trials would show by luck alone,
  ``SR₀ = √V[SRₙ]·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))``, γ the Euler–Mascheroni constant.
- ``bootstrap_sharpe_ci``: a circular block bootstrap confidence interval of the annualized Sharpe ratio.
- ``permutation_pvalue``: signals shuffled across dates within each symbol; the share of shuffles that earn at
  least the observed mean return (with the observed one counted, so never 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class Performance:
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float  # a positive fraction of the peak
    calmar: float


def _moments(returns: np.ndarray) -> tuple[float, float, float]:
    """Per-period Sharpe ratio, skewness and Pearson (non-excess) kurtosis, population moments."""
    r = np.asarray(returns, dtype=np.float64)
    mean, std = r.mean(), r.std()
    if std == 0:
        raise ValueError("returns with zero variance have no Sharpe ratio")
    z = (r - mean) / std
    return float(mean / std), float(np.mean(z**3)), float(np.mean(z**4))


def per_period_sharpe(equity: np.ndarray) -> float:
    """The per-period Sharpe ratio of an equity curve's returns (0 when they never vary): a DSR trial."""
    e = np.asarray(equity, dtype=np.float64)
    r = e[1:] / e[:-1] - 1
    return _moments(r)[0] if r.std() > 0 else 0.0


def max_drawdown(equity: np.ndarray) -> float:
    """The largest fall from a running peak, as a fraction of that peak."""
    e = np.asarray(equity, dtype=np.float64)
    return float(np.max(1 - e / np.maximum.accumulate(e)))


def performance(equity: np.ndarray, periods_per_year: int = 252) -> Performance:
    """Figures of an equity curve (one value per period, the first the starting value)."""
    e = np.asarray(equity, dtype=np.float64)
    r = e[1:] / e[:-1] - 1
    years = len(r) / periods_per_year
    cagr = (e[-1] / e[0]) ** (1 / years) - 1
    vol = float(r.std(ddof=1) * math.sqrt(periods_per_year))
    sharpe = float(r.mean() / r.std(ddof=1) * math.sqrt(periods_per_year)) if r.std(ddof=1) > 0 else 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    sortino = float(r.mean() / downside * math.sqrt(periods_per_year)) if downside > 0 else math.inf
    mdd = max_drawdown(e)
    return Performance(float(cagr), vol, sharpe, sortino, mdd, float(cagr / mdd) if mdd > 0 else math.inf)


def psr_from_moments(sharpe: float, n: int, skew: float, kurtosis: float, benchmark: float = 0.0) -> float:
    """PSR of a per-period Sharpe ratio ``sharpe`` measured on ``n`` returns with these moments."""
    if n < 2:
        raise ValueError(f"PSR needs at least 2 returns, got {n}")
    scale = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    return float(norm.cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(scale)))


def probabilistic_sharpe_ratio(returns: np.ndarray, benchmark: float = 0.0) -> float:
    """PSR of ``returns`` against a per-period benchmark Sharpe ratio."""
    sharpe, skew, kurtosis = _moments(returns)
    return psr_from_moments(sharpe, len(returns), skew, kurtosis, benchmark)


def expected_max_sharpe(sharpe_variance: float, n_trials: int) -> float:
    """SR₀: the per-period Sharpe ratio the best of ``n_trials`` trials with true Sharpe 0 is expected to show."""
    if n_trials < 2:
        return 0.0
    return math.sqrt(sharpe_variance) * (
        (1 - EULER_GAMMA) * norm.ppf(1 - 1 / n_trials) + EULER_GAMMA * norm.ppf(1 - 1 / (n_trials * math.e))
    )


def deflated_sharpe_ratio(returns: np.ndarray, trial_sharpes: np.ndarray) -> float:
    """DSR of the chosen ``returns`` among every trial tried (their per-period Sharpe ratios, this one included):
    the PSR against ``expected_max_sharpe`` of that many trials with their variance."""
    trials = np.asarray(trial_sharpes, dtype=np.float64)
    benchmark = expected_max_sharpe(float(trials.var(ddof=1)) if len(trials) > 1 else 0.0, len(trials))
    return probabilistic_sharpe_ratio(returns, benchmark)


def bootstrap_sharpe_ci(
    returns: np.ndarray,
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    block: int = 1,
    periods_per_year: int = 252,
    seed: int = 0,
) -> tuple[float, float]:
    """A ``1 − alpha`` percentile interval of the annualized Sharpe ratio from a circular block bootstrap
    (``block`` consecutive returns per draw; 1 = iid)."""
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(n_boot, math.ceil(n / block)))
    idx = ((starts[:, :, None] + np.arange(block)[None, None, :]) % n).reshape(n_boot, -1)[:, :n]
    samples = r[idx]
    with np.errstate(divide="ignore", invalid="ignore"):  # a draw of identical returns has no Sharpe ratio
        sharpes = samples.mean(axis=1) / samples.std(axis=1, ddof=1) * math.sqrt(periods_per_year)
    sharpes = sharpes[np.isfinite(sharpes)]
    if sharpes.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(sharpes, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def permutation_pvalue(signals: np.ndarray, returns: np.ndarray, *, n_perm: int = 1000, seed: int = 0) -> float:
    """p-value of the mean return of trading ``signals`` (dates × symbols, the weight held over each date's
    ``returns``) against the same signals shuffled across dates within each symbol."""
    s, r = np.nan_to_num(np.asarray(signals, dtype=np.float64)), np.nan_to_num(np.asarray(returns, dtype=np.float64))
    observed = float(np.mean(s * r))
    rng = np.random.default_rng(seed)
    beaten = 0
    for _ in range(n_perm):
        shuffled = rng.permuted(s, axis=0)  # each symbol's column shuffled on its own
        beaten += float(np.mean(shuffled * r)) >= observed
    return (1 + beaten) / (1 + n_perm)


@dataclass(frozen=True)
class Trading:
    turnover: float  # traded notional per year, as a multiple of mean equity
    exposure: float  # mean gross exposure / equity
    cost_drag: float  # costs per year (impact and fees) / mean equity
    hit_rate: float  # share of invested periods whose return was positive


def trading(
    equity: np.ndarray,
    gross_exposure: np.ndarray,
    traded_notional: np.ndarray,
    costs: np.ndarray,
    periods_per_year: int = 252,
) -> Trading:
    """Figures of how a book traded, per period arrays (the first period is the start: nothing traded yet).
    ``gross_exposure``: Σ|position|·price at each period's close."""
    e = np.asarray(equity, dtype=np.float64)
    years = (len(e) - 1) / periods_per_year
    mean_equity = float(e.mean())
    r = e[1:] / e[:-1] - 1
    invested = np.asarray(gross_exposure, dtype=np.float64)[:-1] > 0  # held over the next period
    return Trading(
        turnover=float(np.sum(traded_notional)) / years / mean_equity,
        exposure=float(np.mean(np.asarray(gross_exposure, dtype=np.float64) / e)),
        cost_drag=float(np.sum(costs)) / years / mean_equity,
        hit_rate=float(np.mean(r[invested] > 0)) if invested.any() else math.nan,
    )


def summarize(equity: np.ndarray, gross_exposure: np.ndarray, traded_notional: np.ndarray, costs: np.ndarray,
              periods_per_year: int = 252) -> dict[str, float]:  # fmt: skip
    """Every figure of one variant's books, flat (for a report table and Dagster metadata)."""
    e = np.asarray(equity, dtype=np.float64)
    p = performance(e, periods_per_year)
    t = trading(e, gross_exposure, traded_notional, costs, periods_per_year)
    returns = e[1:] / e[:-1] - 1
    low, high = bootstrap_sharpe_ci(returns, periods_per_year=periods_per_year)
    return {
        **{k: float(v) for k, v in vars(p).items()},
        **{k: float(v) for k, v in vars(t).items()},
        "psr": probabilistic_sharpe_ratio(returns) if returns.std() > 0 else math.nan,
        "sharpe_ci_low": low,
        "sharpe_ci_high": high,
    }
