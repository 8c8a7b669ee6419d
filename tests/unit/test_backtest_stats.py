"""Backtest statistics against independent numbers: the Deflated Sharpe Ratio paper's worked example, a PSR
worked by hand, moments from scipy, drawdown/CAGR/Sortino by hand, the bootstrap interval against Lo's (2002)
standard error, and the permutation test on a signal that knows the future and on one that knows nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from mem_pipeline.backtest.stats import (
    bootstrap_sharpe_ci,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    max_drawdown,
    performance,
    permutation_pvalue,
    probabilistic_sharpe_ratio,
    psr_from_moments,
    trading,
)


def test_the_deflated_sharpe_ratio_papers_worked_example() -> None:
    # Bailey & López de Prado (2014), numerical example: annualized SR 2.5 over 1,250 daily returns, 100 trials
    # whose annualized Sharpe ratios have variance 0.5, skewness -3, kurtosis 10 -> SR0 = 0.1132, DSR = 0.9004.
    sr0 = expected_max_sharpe(0.5 / 250, 100)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert psr_from_moments(2.5 / math.sqrt(250), 1250, -3.0, 10.0, sr0) == pytest.approx(0.9004, abs=5e-5)


def test_psr_by_hand_for_normal_returns() -> None:
    # SR 0.1 per period on 101 returns, skew 0, kurtosis 3: z = 0.1·10/√(1 + 0.01·2/4) = 0.997509, Φ(z) = 0.84074
    assert psr_from_moments(0.1, 101, 0.0, 3.0) == pytest.approx(0.84074, abs=1e-5)


def test_psr_reads_the_samples_moments_as_scipy_computes_them() -> None:
    r = np.random.default_rng(4).standard_t(5, 500) * 0.01 + 0.001
    sharpe = r.mean() / r.std()
    expected = psr_from_moments(sharpe, 500, sps.skew(r), sps.kurtosis(r, fisher=False), 0.02)
    assert probabilistic_sharpe_ratio(r, 0.02) == pytest.approx(expected, rel=1e-12)


def test_more_trials_deflate_more() -> None:
    r = np.random.default_rng(5).normal(0.001, 0.01, 1000)
    trials = np.random.default_rng(6).normal(0.0, 0.05, 200)
    assert (
        deflated_sharpe_ratio(r, trials[:200]) < deflated_sharpe_ratio(r, trials[:10]) < probabilistic_sharpe_ratio(r)
    )


def test_drawdown_cagr_and_sortino_by_hand() -> None:
    assert max_drawdown(np.array([100, 120, 90, 130, 65])) == pytest.approx(0.5)
    # 100 -> 121 over 504 daily returns of exactly 1.1**(1/252) - 1 each: CAGR 10 %, no down day
    e = 100 * 1.1 ** (np.arange(505) / 252)
    p = performance(e)
    assert p.cagr == pytest.approx(0.10, rel=1e-9) and p.max_drawdown == pytest.approx(0.0, abs=1e-12)
    # returns +2 %, -1 % alternating: mean 0.5 %, downside deviation √(0.01²/2) = 0.0070711
    e = np.cumprod([1.0] + [1.02, 0.99] * 50)
    assert performance(e).sortino == pytest.approx(0.005 / math.sqrt(0.0001 / 2) * math.sqrt(252), rel=1e-9)


def test_the_bootstrap_interval_matches_los_standard_error() -> None:
    n, daily_sr = 2000, 0.05
    r = np.random.default_rng(8).normal(daily_sr * 0.01, 0.01, n)
    low, high = bootstrap_sharpe_ci(r, n_boot=4000, seed=1)
    sample = r.mean() / r.std(ddof=1) * math.sqrt(252)
    se = math.sqrt((1 + daily_sr**2 / 2) / n) * math.sqrt(252)  # Lo (2002), annualized
    assert low < sample < high
    assert high - low == pytest.approx(2 * 1.959964 * se, rel=0.1)


def test_a_signal_that_knows_the_future_passes_one_that_knows_nothing_does_not() -> None:
    rng = np.random.default_rng(9)
    returns = rng.normal(0, 0.01, (500, 20))
    informed = np.sign(returns) * (rng.random((500, 20)) < 0.1)  # right on 10 % of the days, flat otherwise
    assert permutation_pvalue(informed, returns, n_perm=500) == pytest.approx(1 / 501)
    noise = rng.choice([-1.0, 1.0], size=(500, 20))
    assert permutation_pvalue(noise, returns, n_perm=500) > 0.05


def test_the_permutation_pvalue_converges_to_the_exact_share_of_all_permutations() -> None:
    # Three dates, two symbols: all 3! x 3! within-symbol shuffles enumerated here; the Monte Carlo p-value must
    # approach the share of them that earn at least the observed mean (by hand for the first symbol alone:
    # 3 of its 6 orders do).
    import itertools

    signals = np.array([[1.0, 0.5], [0.0, -1.0], [-1.0, 0.0]])
    returns = np.array([[0.02, 0.01], [-0.01, -0.03], [0.01, 0.02]])
    observed = np.mean(signals * returns)
    orders = list(itertools.permutations(range(3)))
    beaten = [
        np.mean(np.column_stack([signals[list(a), 0], signals[list(b), 1]]) * returns) >= observed - 1e-15
        for a in orders
        for b in orders
    ]
    exact = float(np.mean(beaten))
    n = 20_000
    p = permutation_pvalue(signals, returns, n_perm=n, seed=3)
    assert p == pytest.approx((1 + n * exact) / (1 + n), abs=4 * math.sqrt(exact * (1 - exact) / n))
    alone = permutation_pvalue(signals[:, :1], returns[:, :1], n_perm=n, seed=4)
    assert alone == pytest.approx(0.5, abs=4 * math.sqrt(0.25 / n))


def test_trading_figures_by_hand() -> None:
    # Two periods a "year": equity 100 -> 110 -> 99; held 50 then 0; traded 50 then 50; costs 1 then 1.
    t = trading(
        np.array([100.0, 110.0, 99.0]),
        np.array([50.0, 55.0, 0.0]),
        np.array([0.0, 50.0, 50.0]),
        np.array([0.0, 1.0, 1.0]),
        periods_per_year=2,
    )
    mean_equity = (100 + 110 + 99) / 3
    assert t.turnover == pytest.approx(100 / 1 / mean_equity)
    assert t.exposure == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert t.cost_drag == pytest.approx(2 / mean_equity)
    assert t.hit_rate == pytest.approx(0.5)  # invested over both periods: +10 %, then -10 %
