"""CVaR against independent references: the normal closed form, Rockafellar–Uryasev minimisation (exact
search and a scipy LP), sorting; FHS against its definition."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import linprog

from mem_pipeline.risk import RiskError, cvar, fhs_scenarios, gaussian_cvar, portfolio_cvar, ru_objective, var_cvar


@pytest.mark.parametrize(("mu", "sigma", "alpha"), [(0.0, 1.0, 0.975), (0.01, 0.02, 0.95), (-0.5, 3.0, 0.99)])
def test_cvar_of_a_large_normal_sample_matches_the_closed_form(mu: float, sigma: float, alpha: float) -> None:
    losses = np.random.default_rng(1).normal(mu, sigma, 2_000_000)
    expected = mu + sigma * stats.norm.pdf(stats.norm.ppf(alpha)) / (1 - alpha)
    assert cvar(losses, alpha) == pytest.approx(expected, rel=5e-3)
    assert float(var_cvar(losses, alpha)[0]) == pytest.approx(mu + sigma * stats.norm.ppf(alpha), rel=5e-3)


def test_gaussian_cvar_matches_scipy_expect() -> None:
    alpha, sigma = 0.975, 0.7
    q = stats.norm.ppf(alpha, scale=sigma)
    tail_mean = stats.norm.expect(lambda x: x, scale=sigma, lb=q, conditional=True)
    assert gaussian_cvar(sigma, alpha) == pytest.approx(tail_mean, rel=1e-7)


@pytest.mark.parametrize(("n", "alpha"), [(200, 0.975), (250, 0.975), (101, 0.9), (7, 0.5), (1000, 0.99)])
def test_cvar_equals_the_minimum_of_the_rockafellar_uryasev_function(n: int, alpha: float) -> None:
    losses = np.random.default_rng(n).standard_t(4, n)
    # F is convex and piecewise linear with kinks at the losses: its minimum is at one of them.
    exact_min = min(ru_objective(float(z), losses, alpha) for z in losses)
    assert cvar(losses, alpha) == pytest.approx(exact_min, rel=1e-12, abs=1e-12)
    # The same minimum as Rockafellar & Uryasev's linear program: min z + sum(u) / ((1 - a) n), u >= L - z, u >= 0.
    c = np.r_[1.0, np.full(n, 1.0 / ((1 - alpha) * n))]
    a_ub = np.hstack([-np.ones((n, 1)), -np.eye(n)])
    lp = linprog(c, A_ub=a_ub, b_ub=-losses, bounds=[(None, None)] + [(0, None)] * n, method="highs")
    assert lp.status == 0
    assert cvar(losses, alpha) == pytest.approx(lp.fun, rel=1e-8, abs=1e-10)


def test_cvar_is_the_mean_of_the_worst_losses_when_the_tail_is_whole() -> None:
    losses = np.random.default_rng(3).normal(size=400)
    worst = np.sort(losses)[-10:]  # (1 - 0.975) * 400 = 10
    assert cvar(losses, 0.975) == pytest.approx(worst.mean(), rel=1e-12)
    assert float(var_cvar(losses, 0.975)[0]) == np.sort(losses)[389]


def test_var_cvar_works_column_by_column() -> None:
    losses = np.random.default_rng(4).normal(size=(300, 5))
    var, cv = var_cvar(losses, 0.95)
    for j in range(5):
        assert cv[j] == pytest.approx(cvar(losses[:, j], 0.95))
        assert cv[j] >= var[j]


def test_portfolio_cvar_is_positively_homogeneous_and_subadditive() -> None:
    rng = np.random.default_rng(5)
    r = rng.normal(0, 0.02, (250, 4))
    w1, w2 = rng.normal(0, 100, 4), rng.normal(0, 100, 4)
    assert portfolio_cvar(r, 3 * w1, 0.975) == pytest.approx(3 * portfolio_cvar(r, w1, 0.975))
    assert portfolio_cvar(r, w1 + w2, 0.975) <= portfolio_cvar(r, w1, 0.975) + portfolio_cvar(r, w2, 0.975) + 1e-12
    # A long position loses when the return is negative: its losses are -r * w.
    assert portfolio_cvar(r, np.array([100.0, 0, 0, 0]), 0.975) == pytest.approx(cvar(-r[:, 0] * 100, 0.975))


def test_fhs_rescales_standardised_shocks_to_todays_vol() -> None:
    rng = np.random.default_rng(6)
    z = rng.standard_t(5, (500, 3))
    past_vol = np.exp(rng.normal(np.log(0.01), 0.5, (500, 3)))
    returns = z * past_vol
    next_vol = np.array([0.02, 0.005, 0.01])
    scenarios = fhs_scenarios(returns, past_vol, next_vol)
    np.testing.assert_allclose(scenarios, z * next_vol, rtol=1e-12)
    # CVaR of the log scenarios scales with today's vol: doubling it doubles the CVaR.
    doubled = fhs_scenarios(returns, past_vol, 2 * next_vol)
    np.testing.assert_allclose(var_cvar(-doubled, 0.975)[1], 2 * var_cvar(-scenarios, 0.975)[1], rtol=1e-12)
    # With a constant past vol equal to today's, FHS is plain historical simulation.
    flat = np.full((500, 3), 0.01)
    np.testing.assert_allclose(fhs_scenarios(returns, flat, np.full(3, 0.01)), returns, rtol=1e-12)


def test_fhs_falls_back_to_raw_returns_without_a_forecast_and_zero_shocks_for_gaps() -> None:
    returns = np.array([[0.01, 0.02], [np.nan, -0.03], [0.02, 0.01]])
    past = np.array([[0.01, np.nan], [0.01, np.nan], [np.nan, np.nan]])
    out = fhs_scenarios(returns, past, np.array([0.02, np.nan]))
    np.testing.assert_allclose(out[:, 0], [0.02, 0.0, 0.0])
    np.testing.assert_allclose(out[:, 1], [0.02, -0.03, 0.01])


def test_bad_inputs_raise() -> None:
    with pytest.raises(RiskError, match="alpha"):
        cvar(np.ones(10), 1.0)
    with pytest.raises(RiskError, match="no scenarios"):
        cvar(np.array([]), 0.9)
    with pytest.raises(RiskError, match="> 0"):
        fhs_scenarios(np.ones((2, 1)), np.zeros((2, 1)), np.ones(1))
