"""The synthetic market: determinism, bar validity, and that the data obey the configured truth.

Statistical tolerances are a few standard errors derived from the model itself (not from observed
output), so a failure means the generator disagrees with its documented model, not bad luck.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest

from mem_pipeline.core.errors import SourceError
from mem_pipeline.core.schemas import BAR_SCHEMA
from mem_pipeline.ingest.sources.base import MarketDataSource
from mem_pipeline.ingest.sources.synthetic import (
    AlphaParams,
    ImpactParams,
    SyntheticConfig,
    SyntheticMarket,
    SyntheticSource,
    cached_market,
    generate_market,
    impact_cost_bps,
    load_truth,
    simulate_fills,
    write_truth,
)

N_SYMBOLS = 10
N_DAYS = 2000
START = dt.date(2000, 1, 3)  # a Monday
END = np.busday_offset(np.datetime64(START), N_DAYS - 1).item()
IDIO_VOL, ALPHA, BETA = 0.015, 0.05, 0.90
DF = 8.0
KURTOSIS = 3.0 + 6.0 / (DF - 4.0)  # E[z^4] of a unit-variance Student-t(8) = 4.5
SECTOR_VOL, N_SECTORS = 0.006, 3
TRANSITION = [[0.98, 0.02], [0.05, 0.95]]
FACTOR_MEAN, FACTOR_VOL = [0.0004, -0.0006], [0.008, 0.02]

SMALL = {
    "seed": 11,
    "n_symbols": N_SYMBOLS,
    "start": START.isoformat(),
    "end": END.isoformat(),
    "n_regimes": 2,
    "regimes": {"transition": TRANSITION, "factor_mean": FACTOR_MEAN, "factor_vol": FACTOR_VOL},
    "sectors": {"n_sectors": N_SECTORS, "vol": SECTOR_VOL},
    # Dispersion 0: every symbol's unconditional idiosyncratic vol is exactly IDIO_VOL.
    "garch": {"idio_vol": IDIO_VOL, "vol_dispersion": 0.0, "alpha": ALPHA, "beta": BETA},
    "shocks": {"distribution": "student_t", "df": DF},
}


@pytest.fixture(scope="module")
def config() -> SyntheticConfig:
    return SyntheticConfig.from_params(SMALL)


@pytest.fixture(scope="module")
def source(config: SyntheticConfig) -> SyntheticSource:
    return SyntheticSource(config)


@pytest.fixture(scope="module")
def market(source: SyntheticSource) -> SyntheticMarket:
    return source.truth()


@pytest.fixture(scope="module")
def bars(source: SyntheticSource) -> pl.DataFrame:
    return source.fetch(START, END)


def _wide(bars: pl.DataFrame, column: str) -> np.ndarray:
    """(T, N) matrix of one bar column, dates ascending, symbols SYN000..."""
    wide = bars.pivot(on="symbol", index="date", values=column).sort("date")
    return wide.select(sorted(c for c in wide.columns if c != "date")).to_numpy()


def _stationary(matrix: list[list[float]]) -> np.ndarray:
    """Stationary law by power iteration (independent of the module's linear solve)."""
    p = np.asarray(matrix)
    pi = np.full(len(p), 1.0 / len(p))
    for _ in range(10_000):
        pi = pi @ p
    return pi


# --- the source contract --------------------------------------------------------------------


def test_source_contract(source: SyntheticSource, bars: pl.DataFrame) -> None:
    assert isinstance(source, MarketDataSource)
    assert source.name == "synthetic"
    assert source.date_range() == (START, END)
    assert bars.schema == pl.Schema(BAR_SCHEMA)
    assert bars.height == N_DAYS * N_SYMBOLS
    assert bars["symbol"].unique().sort().to_list() == [f"SYN{i:03d}" for i in range(N_SYMBOLS)]
    assert bars["date"].n_unique() == N_DAYS
    assert bars["date"].dt.weekday().max() <= 5  # Mon..Fri only
    assert bars["source_row"].to_list() == list(range(1, N_DAYS * N_SYMBOLS + 1))
    assert bars["source_file"].unique().to_list() == [bars["source_file"][0]]
    assert bars["source_file"][0].startswith("synthetic://seed=11")
    assert bars.select(pl.struct("symbol", "date").is_unique().all()).item()


def test_empty_and_out_of_range_windows(source: SyntheticSource) -> None:
    assert source.fetch(END, START).height == 0
    assert source.fetch(dt.date(1990, 1, 1), dt.date(1990, 12, 31)).height == 0
    saturday = dt.date(2000, 1, 8)
    assert source.fetch(saturday, saturday).height == 0
    assert source.fetch(saturday, saturday).schema == pl.Schema(BAR_SCHEMA)


# --- determinism and window independence ----------------------------------------------------


def test_same_seed_is_bit_identical_and_seed_matters(config: SyntheticConfig) -> None:
    first, second = generate_market(config), generate_market(config)
    assert first.bars().equals(second.bars())
    for name in ("close", "high", "low", "open", "volume", "spread_bps", "idio_var", "regime"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
    other = generate_market(config.replace(seed=12)).bars()
    assert not np.allclose(other["close"].to_numpy(), first.bars()["close"].to_numpy())


def test_window_independence(config: SyntheticConfig, bars: pl.DataFrame) -> None:
    cached_market.cache_clear()  # a cold cache that first sees a single day
    day = dt.date(2003, 6, 4)
    single = SyntheticSource(config).fetch(day, day)
    assert single.height == N_SYMBOLS
    assert single.equals(bars.filter(pl.col("date") == day))

    lo, hi = dt.date(2001, 3, 1), dt.date(2002, 2, 28)
    window = SyntheticSource(config).fetch(lo, hi)
    assert window.equals(bars.filter(pl.col("date").is_between(lo, hi)))


# --- bar validity ---------------------------------------------------------------------------


def test_ohlc_bid_ask_volume_are_consistent(bars: pl.DataFrame) -> None:
    values = {c: bars[c].to_numpy() for c in ("open", "high", "low", "close", "bid", "ask", "volume")}
    assert all(np.isfinite(v).all() for v in values.values())
    assert (values["low"] > 0).all()
    assert (values["low"] <= np.minimum(values["open"], values["close"])).all()
    assert (values["high"] >= np.maximum(values["open"], values["close"])).all()
    assert (values["bid"] < values["close"]).all()
    assert (values["close"] < values["ask"]).all()
    assert (values["volume"] >= 1).all()
    assert (values["volume"] == np.round(values["volume"])).all()  # whole shares


# --- the data obey the configured truth -----------------------------------------------------


def _check_transitions(path: np.ndarray, matrix: list[list[float]]) -> None:
    """Given the n_i departures from state i, counts i->j are Binomial(n_i, P_ij) (Markov
    property), so each frequency has SE sqrt(P_ij (1 - P_ij) / n_i); allow 5 SE (+1e-12)."""
    p = np.asarray(matrix)
    k = len(p)
    counts = np.zeros((k, k))
    np.add.at(counts, (path[:-1], path[1:]), 1)
    departures = counts.sum(axis=1)
    assert (departures > 100).all(), "too few visits for a meaningful check"
    freq = counts / departures[:, None]
    tolerance = 5 * np.sqrt(p * (1 - p) / departures[:, None]) + 1e-12
    assert (np.abs(freq - p) <= tolerance).all(), (freq, p)


def test_regime_transition_frequencies_match_matrix(market: SyntheticMarket) -> None:
    _check_transitions(market.regime.astype(int), TRANSITION)


def test_three_regime_chain(config: SyntheticConfig) -> None:
    matrix = [[0.97, 0.025, 0.005], [0.05, 0.93, 0.02], [0.02, 0.08, 0.90]]
    three = SyntheticConfig.from_params(
        {
            **config.to_params(),
            "n_regimes": 3,
            "regimes": {
                "transition": matrix,
                "factor_mean": [0.0005, 0.0, -0.001],
                "factor_vol": [0.007, 0.012, 0.03],
            },
            "end": "2015-12-31",  # ~4,200 days so the rare state is visited often enough
        }
    )
    market = generate_market(three)
    _check_transitions(market.regime.astype(int), matrix)
    # Occupation shares vs the stationary law. Asymptotic variance of the share of state j
    # (Kemeny-Snell): pi_j (2 Z_jj - 1 - pi_j) / T with Z = (I - P + 1 pi)^-1; allow 5 SE.
    p, pi = np.asarray(matrix), _stationary(matrix)
    fundamental = np.linalg.inv(np.eye(3) - p + np.outer(np.ones(3), pi))
    se = np.sqrt(pi * (2 * np.diag(fundamental) - 1 - pi) / market.n_days)
    share = np.bincount(market.regime, minlength=3) / market.n_days
    assert (np.abs(share - pi) < 5 * se).all(), (share, pi, se)


def test_factor_volatility_per_regime(market: SyntheticMarket) -> None:
    """The sample sd over n iid shocks has relative SE ~ sqrt((kurtosis - 1) / (4 n)); allow 5 SE.
    The mean (SE = vol / sqrt(n)) is checked at 5 SE too."""
    for regime, (mean, vol) in enumerate(zip(FACTOR_MEAN, FACTOR_VOL, strict=True)):
        f = market.factor_return[market.regime == regime]
        n = len(f)
        relative_se = math.sqrt((KURTOSIS - 1) / (4 * n))
        assert abs(f.std() / vol - 1) < 5 * relative_se, (regime, f.std(), vol)
        assert abs(f.mean() - mean) < 5 * vol / math.sqrt(n)


def _idiosyncratic(market: SyntheticMarket, bars: pl.DataFrame) -> np.ndarray:
    """e_t = r_t - beta f_t - g_sector,t from the bars' close-to-close log returns (t >= 1)."""
    r = np.diff(np.log(_wide(bars, "close")), axis=0)
    common = market.factor_return[1:, None] * market.beta[None, :]
    return r - common - market.sector_return[1:, market.sector]


def test_idiosyncratic_variance_matches_garch(market: SyntheticMarket, bars: pl.DataFrame) -> None:
    e = _idiosyncratic(market, bars)
    n_obs = e.size
    unconditional = IDIO_VOL**2
    assert np.allclose(market.omega, unconditional * (1 - ALPHA - BETA))

    # 1) Standardised residuals e / sqrt(h) are iid unit-variance t(8): mean of z^2 has
    #    SE sqrt((kurtosis - 1) / n).
    z2 = e**2 / market.idio_var[1:]
    assert abs(z2.mean() - 1) < 5 * math.sqrt((KURTOSIS - 1) / n_obs)

    # 2) Mean of e^2 vs omega / (1 - alpha - beta). e^2 is ARMA(1,1) with AR root phi = alpha +
    #    beta and lag-1 autocorrelation rho1 = alpha (1 - alpha beta - beta^2) / (1 - 2 alpha beta
    #    - beta^2), rho_k = rho1 phi^(k-1); Var(e^2) / s^4 = kurtosis (1 - phi^2) / (1 - beta^2 -
    #    2 alpha beta - kurtosis alpha^2) - 1. SE of the mean = sqrt(Var * (1 + 2 rho1 / (1 - phi))
    #    / T) per symbol, pooled over independent symbols. For these params SE ~ 0.028.
    phi = ALPHA + BETA
    rho1 = ALPHA * (1 - ALPHA * BETA - BETA**2) / (1 - 2 * ALPHA * BETA - BETA**2)
    excess = KURTOSIS * (1 - phi**2) / (1 - BETA**2 - 2 * ALPHA * BETA - KURTOSIS * ALPHA**2) - 1
    se = math.sqrt(excess * (1 + 2 * rho1 / (1 - phi)) / n_obs)
    assert abs((e**2).mean() / unconditional - 1) < 5 * se


def test_cross_symbol_correlation_matches_betas(market: SyntheticMarket, bars: pl.DataFrame) -> None:
    """Implied corr_ij = (b_i b_j Var f + [same sector] s_g^2) / sqrt(Var r_i Var r_j), with
    Var f = E_pi[vol^2] + Var_pi(mean). Errors are dominated by the regime path (few long spells,
    common to all pairs): across seeds the pair-mean error has sd ~0.025, single pairs ~0.05,
    so we allow 0.1 on the mean and 0.2 per pair."""
    pi = _stationary(TRANSITION)
    mean, vol = np.asarray(FACTOR_MEAN), np.asarray(FACTOR_VOL)
    var_f = pi @ vol**2 + pi @ (mean - pi @ mean) ** 2
    b = market.beta
    same_sector = np.equal.outer(np.arange(N_SYMBOLS) % N_SECTORS, np.arange(N_SYMBOLS) % N_SECTORS)
    cov = np.outer(b, b) * var_f + same_sector * SECTOR_VOL**2
    var = b**2 * var_f + SECTOR_VOL**2 + IDIO_VOL**2
    implied = cov / np.sqrt(np.outer(var, var))

    r = np.diff(np.log(_wide(bars, "close")), axis=0)
    sample = np.corrcoef(r.T)
    pairs = np.triu_indices(N_SYMBOLS, 1)
    assert (sample[pairs] > 0).all()
    diff = sample[pairs] - implied[pairs]
    assert abs(diff.mean()) < 0.1
    assert np.abs(diff).max() < 0.2

    # The truth betas are the ones in the data: OLS slope of r_i on f (SE ~0.03; allow 0.15).
    f = market.factor_return[1:]
    slopes = ((f - f.mean()) @ (r - r.mean(axis=0))) / ((f - f.mean()) @ (f - f.mean()))
    assert np.abs(slopes - b).max() < 0.15


def test_reversal_alpha_gives_the_closed_form_autocorrelation(config: SyntheticConfig) -> None:
    """With ``m_t = -phi e_{t-1}`` the idiosyncratic return ``e'_t = m_t + e_t`` has lag-1 autocorrelation
    ``-phi / (1 + phi^2)`` (an MA(1)); phi = 0 leaves the market unchanged bit for bit."""
    phi = 0.3
    base = generate_market(config)
    market = generate_market(config.replace(alpha=AlphaParams(reversal=phi)))
    assert np.array_equal(generate_market(config.replace(alpha=AlphaParams(reversal=0.0))).close, base.close)
    r = np.diff(np.log(market.close), axis=0)
    common = market.factor_return[1:, None] * market.beta[None, :] + market.sector_return[1:][:, market.sector]
    idio = r - common
    lagged = [np.corrcoef(idio[1:, i], idio[:-1, i])[0, 1] for i in range(market.n_symbols)]
    # SE of one autocorrelation ~ 1/sqrt(2000) = 0.022; the mean over 10 symbols ~0.007.
    assert np.mean(lagged) == pytest.approx(-phi / (1 + phi**2), abs=0.03)
    e = idio - market.alpha_mean[1:]  # e_t for t = 1..T-1
    assert np.allclose(market.alpha_mean[2:], -phi * e[:-1], rtol=0, atol=1e-12)


# --- market impact --------------------------------------------------------------------------


def test_impact_closed_form_at_hand_computed_points() -> None:
    params = ImpactParams(eta=0.5, delta=0.6, noise_scale=0.3)
    # 5 + 0.5 * 0.02 * 1e4 * 0.01^0.6 = 5 + 100 * 10^-1.2 = 5 + 6.309573445 = 11.309573445
    assert float(impact_cost_bps(0.01, 0.02, 10.0, params)) == pytest.approx(11.309573445, rel=1e-9)
    # Q = ADV: 5 + 0.5 * 0.02 * 1e4 = 105
    assert float(impact_cost_bps(1.0, 0.02, 10.0, params)) == pytest.approx(105.0, rel=1e-12)
    # Q = 0: half the spread only
    assert float(impact_cost_bps(0.0, 0.03, 4.0, params)) == pytest.approx(2.0, rel=1e-12)
    # delta = 1, eta = 1: linear, 1 + 0.01 * 0.1 * 1e4 = 11
    linear = ImpactParams(eta=1.0, delta=1.0, noise_scale=0.0)
    assert float(impact_cost_bps(0.1, 0.01, 2.0, linear)) == pytest.approx(11.0, rel=1e-12)


def test_impact_is_monotone_and_noise_is_centred() -> None:
    params = ImpactParams()
    sizes = np.geomspace(1e-5, 1.0, 200)
    cost = impact_cost_bps(sizes, 0.02, 8.0, params)
    assert (np.diff(cost) > 0).all()
    rng = np.random.default_rng(0)
    draws = impact_cost_bps(np.full(40_000, 0.05), 0.02, 8.0, params, rng=rng)
    true = float(impact_cost_bps(0.05, 0.02, 8.0, params))
    noise_sd = params.noise_scale * 0.02 * math.sqrt(0.05) * 1e4
    assert abs(draws.mean() - true) < 5 * noise_sd / math.sqrt(len(draws))
    assert draws.std() == pytest.approx(noise_sd, rel=0.05)
    with pytest.raises(ValueError):
        impact_cost_bps(-0.1, 0.02, 8.0, params)


def test_simulated_fills_use_the_true_model(market: SyntheticMarket, bars: pl.DataFrame) -> None:
    fills = simulate_fills(market, 2_000, seed=3)
    assert fills.height == 2_000
    assert simulate_fills(market, 2_000, seed=3).equals(fills)
    impact = market.config.impact
    truth = market.truth_tables()
    joined = (
        fills.join(bars.select("date", "symbol", "volume", "bid", "ask"), on=["date", "symbol"])
        .join(truth.conditional_variance, on=["date", "symbol"])
        .join(truth.symbols.select("symbol", "adv"), on="symbol", suffix="_truth")
    )
    assert joined.height == fills.height
    assert set(joined["side"].unique()) == {"buy", "sell"}
    assert np.allclose(joined["size_over_adv"], joined["qty"] / joined["adv_truth"])
    assert np.allclose(joined["participation"], joined["qty"] / joined["volume"])
    assert np.allclose(joined["sigma"] ** 2, joined["total_var"])
    quoted = (joined["ask"] - joined["bid"]) / ((joined["ask"] + joined["bid"]) / 2) * 1e4
    assert np.allclose(joined["spread_bps"], quoted)
    expected = joined["spread_bps"] / 2 + impact.eta * joined["sigma"] * joined["size_over_adv"] ** impact.delta * 1e4
    assert np.allclose(joined["true_cost_bps"], expected)
    # Realised = true + zero-mean noise: standardised errors have mean ~0 and sd ~1.
    noise_sd = impact.noise_scale * joined["sigma"] * joined["size_over_adv"].sqrt() * 1e4
    z = ((joined["realized_cost_bps"] - joined["true_cost_bps"]) / noise_sd).to_numpy()
    assert abs(z.mean()) < 5 / math.sqrt(len(z))
    assert z.std() == pytest.approx(1.0, abs=0.1)


# --- ground truth on disk -------------------------------------------------------------------


def test_truth_round_trips(market: SyntheticMarket, tmp_path) -> None:
    written = write_truth(market, tmp_path / "truth")
    names = {p.name for p in written}
    assert {
        "regimes.parquet",
        "conditional_variance.parquet",
        "impact_params.json",
        "params.json",
    } <= names
    assert json.loads((tmp_path / "truth" / "params.json").read_text())["seed"] == 11

    loaded = load_truth(tmp_path / "truth")
    expected = market.truth_tables()
    assert loaded.config == market.config
    assert loaded.impact == market.config.impact
    for table in ("regimes", "symbols", "sector_returns", "conditional_variance"):
        assert getattr(loaded, table).equals(getattr(expected, table)), table

    # total variance = beta^2 factor_vol[regime]^2 + sector vol^2 + idiosyncratic variance
    frame = loaded.conditional_variance.join(loaded.regimes, on="date")
    rebuilt = frame["beta"] ** 2 * frame["factor_vol"] ** 2 + SECTOR_VOL**2 + frame["idio_var"]
    assert np.allclose(frame["total_var"], rebuilt)
    assert frame["factor_vol"].to_numpy().tolist() == [FACTOR_VOL[r] for r in frame["regime"].to_list()]


# --- configuration --------------------------------------------------------------------------


def test_config_round_trips_and_params_yaml_parses(config: SyntheticConfig) -> None:
    assert SyntheticConfig.from_params(config.to_params()) == config
    assert SyntheticConfig.from_params(json.loads(json.dumps(config.to_params()))) == config
    assert hash(config) == hash(SyntheticConfig.from_params(SMALL))
    assert SyntheticConfig.from_params_file().n_symbols >= 1


@pytest.mark.parametrize(
    "override",
    [
        {"garch": {"alpha": 0.1, "beta": 0.9}},  # alpha + beta = 1: no unconditional variance
        {"regimes": {"factor_vol": [0.02, 0.008]}},  # regime 0 must be the calm one
        {"n_regimes": 3},  # disagrees with the 2x2 matrix
        {"regimes": {"transition": [[0.9, 0.2], [0.5, 0.5]]}},  # a row not summing to 1
        {"shocks": {"distribution": "student_t", "df": 2}},
        {"garch": {"alfa": 0.1}},  # typo
        {"n_symbols": 2.5},
    ],
)
def test_invalid_configs_are_refused(override: dict) -> None:
    with pytest.raises(SourceError):
        SyntheticConfig.from_params({**SMALL, **override})
