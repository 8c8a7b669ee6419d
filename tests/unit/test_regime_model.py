"""The Markov-switching regime model: its Hamilton filter, recovery of a synthetic market's regimes,
stable labels, clear failures, no lookahead, and content-addressed JSON artifacts.

Fits are the slow part (~0.5 s per start for 2 regimes on 2,500 days), so the market and its main
fit are module fixtures and the other fits use few starts.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from mem_pipeline.core.errors import MemError
from mem_pipeline.ingest.sources.synthetic import RegimeParams, SyntheticConfig, SyntheticMarket, generate_market
from mem_pipeline.models.artifacts import save_artifact
from mem_pipeline.models.regime import (
    FittedRegime,
    RegimeConfig,
    RegimeFitError,
    RegimeInputError,
    fit_regime,
    hamilton_filter,
    order_regimes,
    plot_regimes,
    statsmodels_params,
)

N_SYMBOLS = 30
N_DAYS = 2500
START = dt.date(2009, 1, 1)
END = np.busday_offset(np.datetime64(START), N_DAYS - 1, roll="forward").item()


def market_returns(market: SyntheticMarket) -> pl.DataFrame:
    """Equal-weighted mean of the symbols' daily log returns, from the closes (day 0 vs the initial price)."""
    log_close = np.log(market.close)
    log_returns = np.diff(log_close, axis=0, prepend=np.log(market.initial_price)[None, :])
    dates = pl.Series(market.dates.astype("datetime64[D]")).cast(pl.Date)
    return pl.DataFrame({"trade_date": dates, "mkt_ret": log_returns.mean(axis=1)})


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    config = SyntheticConfig().replace(seed=7, n_symbols=N_SYMBOLS, start=START, end=END)
    return generate_market(config)


@pytest.fixture(scope="module")
def returns(market: SyntheticMarket) -> pl.DataFrame:
    frame = market_returns(market)
    assert frame.height == market.n_days == N_DAYS
    return frame


@pytest.fixture(scope="module")
def fitted(returns: pl.DataFrame) -> FittedRegime:
    return fit_regime(returns, RegimeConfig(k_regimes=2, n_starts=5, seed=0))


def market_truth(market: SyntheticMarket) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True means/vols/P of the equal-weighted MARKET series implied by the generator.

    ``m_t = mean_i(b_i f_t + g_{k(i),t} + e_{i,t})``: regime mean ``bbar mu_s``, regime variance
    ``bbar^2 sigma_s^2`` plus what diversification leaves of sector and idiosyncratic noise,
    ``sigma_g^2 sum_k (n_k / N)^2 + sum_i E[h_i] / N^2`` (about 1.2e-5 here, i.e. +7% on the calm vol).
    """
    config = market.config
    beta_bar = float(market.beta.mean())
    n = market.n_symbols
    counts = np.bincount(market.sector, minlength=config.sectors.n_sectors)
    noise = config.sectors.vol**2 * float(((counts / n) ** 2).sum())
    noise += float(market.unconditional_idio_var.sum()) / n**2
    regimes = config.regimes
    means = beta_bar * np.asarray(regimes.factor_mean)
    vols = np.sqrt(beta_bar**2 * np.asarray(regimes.factor_vol) ** 2 + noise)
    return means, vols, np.asarray(regimes.transition)


# --- the Hamilton filter ----------------------------------------------------------------------


def test_hamilton_filter_matches_statsmodels() -> None:
    """Same parameters, same data: our filter = statsmodels' filtered probabilities and llf.

    statsmodels holds the regimes in the opposite order (volatile first, column-stochastic P), so
    this also checks ``order_regimes`` and the transposition of the transition matrix.
    """
    rng = np.random.default_rng(3)
    path = np.zeros(800, dtype=int)
    for t in range(1, path.size):
        path[t] = path[t - 1] if rng.random() < (0.97 if path[t - 1] == 0 else 0.93) else 1 - path[t - 1]
    y = np.where(
        path == 1, -0.001 + 0.02 * rng.standard_normal(path.size), 0.0006 + 0.007 * rng.standard_normal(path.size)
    )

    model = sm.tsa.MarkovRegression(y, k_regimes=2, trend="c", switching_variance=True)
    sm_means, sm_vols = np.array([-0.001, 0.0006]), np.array([0.02, 0.007])  # regime 0 = volatile
    sm_transition = np.array([[0.93, 0.07], [0.03, 0.97]])  # row-stochastic, statsmodels' order
    params = statsmodels_params(model, sm_means, sm_vols**2, sm_transition)
    assert np.allclose(model.regime_transition_matrix(params)[..., 0], sm_transition.T)
    result = model.filter(params)
    expected = np.asarray(result.filtered_marginal_probabilities)

    means, vols, transition = order_regimes(sm_means, sm_vols, sm_transition)
    assert vols.tolist() == [0.007, 0.02] and transition.tolist() == [[0.97, 0.03], [0.07, 0.93]]
    probs, loglik = hamilton_filter(y, means, vols, transition)
    assert np.abs(probs - expected[:, ::-1]).max() < 1e-6
    assert loglik == pytest.approx(result.llf, abs=1e-6)

    # ``initial`` is the prior of s_0 itself: row 0 is Bayes' rule on y_0, row 1 one step later.
    prior = np.array([0.3, 0.7])
    density = np.exp(-0.5 * ((y[:2, None] - means) / vols) ** 2) / vols
    row0 = prior * density[0] / (prior * density[0]).sum()
    row1 = (row0 @ transition) * density[1] / ((row0 @ transition) * density[1]).sum()
    probs_prior, _ = hamilton_filter(y, means, vols, transition, initial=prior)
    assert np.allclose(probs_prior[:2], [row0, row1], atol=1e-12)


def test_hamilton_filter_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError, match="rows must be"):
        hamilton_filter([0.0, 0.1], [0, 0], [1, 2], [[0.5, 0.4], [0.5, 0.5]])
    with pytest.raises(ValueError, match="vols"):
        hamilton_filter([0.0, 0.1], [0, 0], [1, 0], [[0.5, 0.5], [0.5, 0.5]])


# --- recovery of the synthetic market's regimes --------------------------------------------------


def test_fit_recovers_synthetic_regimes(fitted: FittedRegime, returns: pl.DataFrame, market: SyntheticMarket) -> None:
    """Accuracy within 3 points of the oracle; vols and transition diagonal close to the truth.

    Oracle: ``hamilton_filter`` with the TRUE parameters applied to the SAME market series the model
    sees (true factor-regime means/vols scaled by the mean beta, plus the diversified sector and
    idiosyncratic noise; see ``market_truth``). That isolates the cost of estimating the parameters,
    which is what this test is about. The alternative oracle, the true parameters on the true
    factor_return, also enjoys cleaner data (no residual noise), so a gap to it would mix estimation
    error with information the market series does not have; it is printed for reference only.

    Tolerances: the shocks are Student-t(6) with GARCH idiosyncratic vol while the model is Gaussian,
    so fat-tailed calm days pull the fit towards more switching (stay probabilities a bit low) and
    ~850 volatile days give a vol standard error near 4%: vols within 10%, diagonals within 0.03.
    """
    true_means, true_vols, true_transition = market_truth(market)
    y = returns["mkt_ret"].to_numpy()
    oracle_probs, _ = hamilton_filter(y, true_means, true_vols, true_transition)
    oracle = float((oracle_probs.argmax(axis=1) == market.regime).mean())
    regimes = market.config.regimes
    factor_probs, _ = hamilton_filter(market.factor_return, regimes.factor_mean, regimes.factor_vol, regimes.transition)
    factor_oracle = float((factor_probs.argmax(axis=1) == market.regime).mean())

    probs = fitted.filtered_probabilities(returns)
    assert probs.columns == ["trade_date", "p_regime_0", "p_regime_1"]
    assert probs["trade_date"].to_list() == returns["trade_date"].to_list()
    accuracy = float((probs.select("p_regime_0", "p_regime_1").to_numpy().argmax(axis=1) == market.regime).mean())
    print(f"accuracy {accuracy:.4f}, oracle (market series) {oracle:.4f}, oracle (factor) {factor_oracle:.4f}")
    assert oracle > 0.8  # the problem is learnable at all
    assert abs(accuracy - oracle) <= 0.03

    assert fitted.converged and fitted.k_regimes == 2 and fitted.n_obs == N_DAYS
    assert (fitted.start_date, fitted.end_date) == (START, END)
    assert fitted.vols[0] < fitted.vols[1]
    assert np.allclose(fitted.vols, true_vols, rtol=0.10, atol=0), (fitted.vols, true_vols)
    assert np.allclose(np.diag(fitted.transition_matrix), np.diag(true_transition), atol=0.03, rtol=0)
    assert fitted.means[0] > fitted.means[1]  # calm drifts up, volatile down (true: +0.05%, -0.08%)
    # The reported log-likelihood is on the raw return scale: the filter reproduces it.
    assert fitted.filter(y)[1] == pytest.approx(fitted.loglik, abs=1e-4)


def test_metrics(fitted: FittedRegime) -> None:
    m = fitted.metrics()
    p = fitted.transition_matrix
    assert m["n_params"] == 6 and m["n_obs"] == N_DAYS
    assert m["aic"] == pytest.approx(12 - 2 * fitted.loglik)
    assert m["bic"] == pytest.approx(6 * math.log(N_DAYS) - 2 * fitted.loglik)
    for i in range(2):
        assert m[f"regime_{i}_expected_duration_days"] == pytest.approx(1 / (1 - p[i, i]))
        assert m[f"regime_{i}_vol_annual"] == pytest.approx(fitted.vols[i] * math.sqrt(252))
        assert m[f"regime_{i}_mean_annual"] == pytest.approx(fitted.means[i] * 252)
    assert m["regime_0_stationary_share"] + m["regime_1_stationary_share"] == pytest.approx(1.0)


# --- stable labels ------------------------------------------------------------------------------


def test_labels_do_not_depend_on_the_seed(fitted: FittedRegime, returns: pl.DataFrame) -> None:
    other = fit_regime(returns, RegimeConfig(n_starts=3, seed=12345))
    assert other.vols[0] < other.vols[1]
    assert np.allclose(other.vols, fitted.vols, rtol=1e-4)
    assert np.allclose(other.transition_matrix, fitted.transition_matrix, atol=1e-4)
    a = fitted.filtered_probabilities(returns)["p_regime_1"].to_numpy()
    b = other.filtered_probabilities(returns)["p_regime_1"].to_numpy()
    assert np.abs(a - b).max() < 1e-3


def test_a_volatile_first_start_is_relabelled(fitted: FittedRegime, returns: pl.DataFrame) -> None:
    """statsmodels started with the volatile regime first ends with it first; ordering fixes the labels."""
    y = returns["mkt_ret"].to_numpy() * 100
    model = sm.tsa.MarkovRegression(y, k_regimes=2, trend="c", switching_variance=True)
    start = statsmodels_params(model, [-0.2, 0.05], [4.0, 0.7], [[0.95, 0.05], [0.03, 0.97]])
    result = model.fit(start_params=start, em_iter=10, maxiter=200, cov_type="none", disp=False)
    names = list(model.param_names)
    raw_vols = np.sqrt([result.params[names.index(f"sigma2[{i}]")] for i in range(2)]) / 100
    raw_means = np.array([result.params[names.index(f"const[{i}]")] for i in range(2)]) / 100
    raw_transition = model.regime_transition_matrix(result.params)[..., 0].T
    assert raw_vols[0] > raw_vols[1]  # the raw fit has the volatile regime as 0
    means, vols, transition = order_regimes(raw_means, raw_vols, raw_transition)
    assert np.allclose(vols, fitted.vols, rtol=1e-4)
    assert np.allclose(means, fitted.means, rtol=1e-3)
    assert np.allclose(transition, fitted.transition_matrix, atol=1e-4)


# --- failures -----------------------------------------------------------------------------------


def _frame(values: np.ndarray) -> pl.DataFrame:
    dates = pl.Series(np.busday_offset(np.datetime64("2020-01-01"), np.arange(values.size), roll="forward")).cast(
        pl.Date
    )
    return pl.DataFrame({"trade_date": dates, "mkt_ret": values})


def test_unfittable_series_raise_a_clear_error(returns: pl.DataFrame) -> None:
    with pytest.raises(RegimeFitError, match=r"5 returns are too few for a 2-regime model: need at least 60"):
        fit_regime(_frame(np.array([0.01, -0.02, 0.0, 0.03, -0.01])))
    with pytest.raises(RegimeFitError, match=r"constant .* no variance to split into 2 regimes"):
        fit_regime(_frame(np.full(500, 0.001)))
    # Starts that cannot converge: the message counts them and says why each failed.
    with pytest.raises(RegimeFitError, match=r"0 of 2 starts converged") as caught:
        fit_regime(returns.head(300), RegimeConfig(n_starts=2, max_iter=1, em_iter=0))
    message = str(caught.value)
    assert "start 0: optimizer did not converge within max_iter=1" in message
    assert "start 1: optimizer did not converge" in message
    assert isinstance(caught.value, MemError)


def test_bad_inputs_and_config_are_refused() -> None:
    values = np.linspace(-0.01, 0.01, 100)
    values[[7, 42]] = np.nan
    with pytest.raises(RegimeInputError, match=r"NaN/inf at rows 7, 42"):
        fit_regime(_frame(values))
    with pytest.raises(RegimeInputError, match="lacks column"):
        fit_regime(pl.DataFrame({"date": [dt.date(2020, 1, 1)], "ret": [0.0]}))
    with pytest.raises(RegimeInputError, match="trade_date must be a Date or Datetime column, got String"):
        fit_regime(pl.DataFrame({"trade_date": ["2020-01-01"], "mkt_ret": [0.0]}))
    with pytest.raises(RegimeInputError, match="k_regimes must be 2 or 3"):
        RegimeConfig(k_regimes=4)
    with pytest.raises(RegimeInputError, match="unknown keys"):
        RegimeConfig.from_params({"k_regime": 2})
    config = RegimeConfig.from_params({"k_regimes": 3, "n_starts": 8, "seed": 1, "scale": 100})
    assert config == RegimeConfig(k_regimes=3, n_starts=8, seed=1)


# --- no lookahead, persistence, artifacts, plot -------------------------------------------------


def test_filtered_probabilities_use_no_future_data(fitted: FittedRegime, returns: pl.DataFrame) -> None:
    full = fitted.filtered_probabilities(returns)
    for t in (0, 1, 250, 1234, N_DAYS - 2):
        truncated = fitted.filtered_probabilities(returns.head(t + 1))
        assert truncated.height == t + 1
        assert truncated.row(t) == full.row(t)
    # Rewriting the future changes nothing up to t.
    t = 1000
    rewritten = returns.with_columns(
        pl.when(pl.int_range(pl.len()) > t).then(pl.col("mkt_ret") * -5.0).otherwise(pl.col("mkt_ret")).alias("mkt_ret")
    )
    assert fitted.filtered_probabilities(rewritten).head(t + 1).equals(full.head(t + 1))
    # Row order of the input does not matter (the filter sorts by date).
    assert fitted.filtered_probabilities(returns.reverse()).equals(full)


def test_save_load_round_trip_and_content_addressed_artifact(
    fitted: FittedRegime, returns: pl.DataFrame, tmp_path
) -> None:
    fitted.save(tmp_path / "plain")
    loaded = FittedRegime.load(tmp_path / "plain")
    assert loaded == fitted
    assert loaded.filtered_probabilities(returns).equals(fitted.filtered_probabilities(returns))
    assert not list((tmp_path / "plain").glob("*.pkl"))

    first = save_artifact(tmp_path / "models", "regime", fitted.save)
    second = save_artifact(tmp_path / "models", "regime", loaded.save)
    assert first == second and first.parent == tmp_path / "models" / "regime"
    assert [p.name for p in first.iterdir()] == ["regime.json"]
    assert FittedRegime.load(first) == fitted
    other = save_artifact(tmp_path / "models", "regime", fit_regime(returns.head(600), RegimeConfig(n_starts=1)).save)
    assert other != first


def test_plot_regimes_writes_a_png(fitted: FittedRegime, returns: pl.DataFrame, tmp_path) -> None:
    window = returns.head(500)
    path = plot_regimes(window, fitted.filtered_probabilities(window), tmp_path / "plots" / "regimes.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


# --- three regimes ------------------------------------------------------------------------------


def test_three_regimes_converge_and_are_ordered_by_vol() -> None:
    regimes = RegimeParams(
        transition=((0.98, 0.015, 0.005), (0.03, 0.95, 0.02), (0.02, 0.08, 0.90)),
        factor_mean=(0.0006, 0.0, -0.0015),
        factor_vol=(0.006, 0.013, 0.03),
    )
    config = SyntheticConfig().replace(
        seed=7, n_symbols=N_SYMBOLS, start=START, end=dt.date(2014, 12, 31), n_regimes=3, regimes=regimes
    )
    market = generate_market(config)
    returns = market_returns(market)
    fitted = fit_regime(returns, RegimeConfig(k_regimes=3, n_starts=2, seed=0))
    assert fitted.converged and fitted.k_regimes == 3 and fitted.n_converged >= 1
    assert fitted.vols[0] < fitted.vols[1] < fitted.vols[2]
    assert np.allclose(fitted.transition_matrix.sum(axis=1), 1.0)
    probs = fitted.filtered_probabilities(returns)
    assert probs.columns == ["trade_date", "p_regime_0", "p_regime_1", "p_regime_2"]
    # Loose sanity: the fitted regimes track the true ones far better than chance (1/3).
    accuracy = float((probs.drop("trade_date").to_numpy().argmax(axis=1) == market.regime).mean())
    assert accuracy > 0.6
