"""Per-symbol GARCH volatility model: parameter recovery, the numpy recursion against arch itself,
no lookahead, forecast quality against the synthetic market's true variance, failures, warm starts,
artifacts and the parallel path. The whole file runs in well under 40 s on 2 cores."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from arch import arch_model
from arch.univariate import GARCH, ConstantMean, StudentsT

from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, generate_market
from mem_pipeline.models import artifacts
from mem_pipeline.models.volatility import (
    FittedVol,
    VolConfig,
    VolError,
    fit_vol,
    garch_variance_path,
    plot_vol_forecast,
    qlike,
    rolling_std_baseline,
    warm_start_fit,
)

# Truth of the simulated series, in arch's percent scale: mu, omega, alpha, beta, nu.
TRUE = {"mu": 0.03, "omega": 0.02, "alpha": 0.08, "beta": 0.90, "nu": 6.0}
N_SIM = 20_000


def simulate_pct(n: int, seed: int, o: int = 0, params: list[float] | None = None) -> np.ndarray:
    """Percent returns from arch's own simulator (GARCH(1,1)-t, or GJR with o=1)."""
    model = ConstantMean(None, volatility=GARCH(1, o, 1), distribution=StudentsT(seed=np.random.default_rng(seed)))
    return model.simulate(params or list(TRUE.values()), n, burn=500)["data"].to_numpy()


def frame(series: dict[str, np.ndarray | list[float | None]], start: dt.date = dt.date(1990, 1, 1)) -> pl.DataFrame:
    """Long ``symbol, trade_date, ret_1d`` frame of daily returns on consecutive calendar days."""
    parts = []
    for symbol, values in series.items():
        n = len(values)
        dates = pl.date_range(start, start + dt.timedelta(days=n - 1), eager=True)
        parts.append(
            pl.DataFrame({"symbol": [symbol] * n, "trade_date": dates, "ret_1d": pl.Series(values, dtype=pl.Float64)})
        )
    return pl.concat(parts)


def market_returns(market) -> pl.DataFrame:  # noqa: ANN001 - SyntheticMarket
    return market.log_returns()


@pytest.fixture(scope="module")
def sim() -> pl.DataFrame:
    return frame({"SIM": simulate_pct(N_SIM, seed=0) / 100.0})


@pytest.fixture(scope="module")
def sim_fit(sim: pl.DataFrame) -> FittedVol:
    return fit_vol(sim, VolConfig(model="garch"), workers=1)


# --------------------------------------------------------------------------------------------
# Recovery and the recursion against arch
# --------------------------------------------------------------------------------------------


def test_recovers_simulated_garch_t_parameters(sim_fit: FittedVol) -> None:
    assert sim_fit.failures.height == 0, sim_fit.failures
    p = sim_fit.params.row(0, named=True)
    scale = sim_fit.config.scale
    got = {
        "mu": p["mu"] * scale,
        "omega": p["omega"] * scale**2,
        "alpha": p["alpha"],
        "beta": p["beta"],
        "nu": p["nu"],
    }
    # |error| bounds ~3-4 standard errors at n = 20,000 (omega and nu are the least precise)
    tolerance = {"mu": 0.015, "omega": 0.008, "alpha": 0.015, "beta": 0.02, "nu": 0.8}
    for name, bound in tolerance.items():
        assert abs(got[name] - TRUE[name]) < bound, f"{name}: got {got[name]:.4f}, true {TRUE[name]}"
    assert abs(p["persistence"] - (TRUE["alpha"] + TRUE["beta"])) < 0.008
    assert p["gamma"] == 0.0 and p["converged"] and p["n_obs"] == N_SIM and not p["warm_started"]
    assert p["iterations"] > 0 and p["loglik"] < 1e9


@pytest.mark.parametrize("o", [0, 1])
def test_numpy_recursion_equals_arch(o: int) -> None:
    """The independent reference: arch's own conditional vols and 1-step forecasts on arch's fitted
    parameters, given the same presample value (arch's ``backcast``) as the numpy recursion."""
    params = [0.03, 0.02, 0.05, 0.08, 0.88, 7.0] if o else list(TRUE.values())
    y = simulate_pct(3000, seed=11 + o, o=o, params=params)
    model = arch_model(y, mean="Constant", vol="GARCH", p=1, o=o, q=1, dist="t", rescale=False)
    presample = float(np.var(y))  # an explicit backcast for the fit's conditional volatility
    res = model.fit(disp="off", show_warning=False, backcast=presample)
    values = np.asarray(res.params)
    mu, omega, alpha = values[:3]
    gamma, beta = (values[3], values[4]) if o else (0.0, values[3])

    path = garch_variance_path(y - mu, omega, alpha, gamma, beta, presample)
    np.testing.assert_allclose(np.sqrt(path[:-1]), res.conditional_volatility, rtol=1e-8, atol=0)

    # arch's forecast() recomputes its backcast from the fitted residuals (EWMA of the first 75 e^2)
    forecast_presample = model.volatility.backcast(y - mu)
    path = garch_variance_path(y - mu, omega, alpha, gamma, beta, forecast_presample)
    arch_next = res.forecast(horizon=1, start=0, reindex=False).variance.to_numpy()[:, 0]
    np.testing.assert_allclose(path[1:], arch_next, rtol=1e-8, atol=0)


def test_forecast_is_the_recursion_in_daily_units(sim: pl.DataFrame, sim_fit: FittedVol) -> None:
    """Forecasts come from the unconditional variance in return units; the last one is ``next_vol``."""
    p = sim_fit.params.row(0, named=True)
    fc = sim_fit.forecast(sim)
    assert fc.columns == ["symbol", "trade_date", "vol_forecast"] and fc.height == N_SIM
    r = sim["ret_1d"].to_numpy()
    uncond = p["omega"] / (1 - p["persistence"])
    expected = np.sqrt(garch_variance_path(r - p["mu"], p["omega"], p["alpha"], 0.0, p["beta"], uncond)[1:])
    np.testing.assert_allclose(fc["vol_forecast"].to_numpy(), expected, rtol=1e-12)
    assert fc["vol_forecast"][-1] == pytest.approx(p["next_vol"], rel=1e-12)
    assert p["uncond_vol"] == pytest.approx(np.sqrt(uncond))
    # percent returns -> daily vols of ~1% (not ~1 "percent unit")
    assert 0.002 < fc["vol_forecast"].median() < 0.05


def test_no_lookahead(sim: pl.DataFrame, sim_fit: FittedVol) -> None:
    """The forecast at t from data truncated at t equals the full-data forecast at t (bit for bit)."""
    head = sim.head(3000)
    full = sim_fit.forecast(head)["vol_forecast"].to_numpy()
    for t in (0, 1, 74, 75, 1234, 2999):
        truncated = sim_fit.forecast(head.head(t + 1))
        assert truncated["trade_date"][-1] == head["trade_date"][t]
        assert truncated["vol_forecast"][-1] == full[t], f"forecast at t={t} changes with later data"
    # and changing a later return leaves earlier forecasts alone
    shocked = head.with_columns(
        pl.when(pl.int_range(pl.len()) == 2000).then(0.5).otherwise(pl.col("ret_1d")).alias("ret_1d")
    )
    after = sim_fit.forecast(shocked)["vol_forecast"].to_numpy()
    np.testing.assert_array_equal(after[:2000], full[:2000])
    assert after[2000] > 10 * full[2000]


# --------------------------------------------------------------------------------------------
# Forecast quality on the synthetic market
# --------------------------------------------------------------------------------------------


def test_beats_rolling_std_on_true_variance_of_synthetic_market() -> None:
    """Fit on the first half, forecast out of sample; score both forecasts for day t+1 against the
    market's TRUE conditional variance of the total return on day t+1 (QLIKE)."""
    market = generate_market(SyntheticConfig(n_symbols=10, start=dt.date(2010, 1, 1), end=dt.date(2017, 8, 1)))
    returns = market_returns(market)
    split = market.dates[market.n_days // 2].astype("datetime64[D]").item()
    fitted = fit_vol(returns.filter(pl.col("trade_date") <= split), VolConfig(model="garch"), workers=1)
    assert fitted.failures.height == 0 and fitted.params.height == 10

    n_days, n = market.n_days, market.n_symbols
    truth = pl.DataFrame(  # the variance of the return on the day after trade_date
        {
            "symbol": np.tile(np.asarray(market.symbols), n_days - 1),
            "trade_date": np.repeat(market.dates[:-1].astype("datetime64[D]"), n),
            "true_var_next": market.total_var[1:].ravel(),
        }
    ).with_columns(pl.col("trade_date").cast(pl.Date()))
    scored = (
        fitted.forecast(returns)
        .rename({"vol_forecast": "garch"})
        .join(rolling_std_baseline(returns, 20).rename({"vol_forecast": "rolling"}), on=["symbol", "trade_date"])
        .join(truth, on=["symbol", "trade_date"])
        .filter(pl.col("trade_date") > split)
    )
    assert scored.height > 9_000
    true_var = scored["true_var_next"].to_numpy()
    loss_garch = qlike(scored["garch"].to_numpy() ** 2, true_var)
    loss_rolling = qlike(scored["rolling"].to_numpy() ** 2, true_var)
    message = f"out-of-sample QLIKE vs true variance: GARCH {loss_garch:.4f}, rolling std(20) {loss_rolling:.4f}"
    print(message)
    assert loss_garch < loss_rolling, message


def test_qlike_and_baseline_basics() -> None:
    v = np.array([1.0, 2.0, 0.5])
    assert qlike(v, v) == 0.0
    assert qlike(2 * v, v) == pytest.approx(0.5 - np.log(0.5) - 1)
    assert qlike([1.0, np.nan], [1.0, 3.0]) == 0.0
    with pytest.raises(VolError):
        qlike([1.0, 0.0], [1.0, 1.0])
    with pytest.raises(VolError):
        qlike([1.0], [1.0, 1.0])
    returns = frame({"A": [None, 0.01, -0.02, 0.03, 0.0]})
    base = rolling_std_baseline(returns, window=3)
    assert base["trade_date"].to_list() == returns["trade_date"].to_list()[3:]
    assert base["vol_forecast"][0] == pytest.approx(np.std([0.01, -0.02, 0.03], ddof=1))


# --------------------------------------------------------------------------------------------
# Failures, warm start, parallel
# --------------------------------------------------------------------------------------------


def test_failures_are_reported_and_others_still_fit() -> None:
    good = simulate_pct(1500, seed=3) / 100
    returns = frame(
        {
            "GOOD": list(good),
            "CONST": [0.001] * 1500,
            "SHORT": list(good[:100]),
            "EMPTY": [None] * 400,
            "INF": [*good[:599], float("inf")],
        }
    )
    fitted = fit_vol(returns, VolConfig(min_obs=250), workers=1)
    assert fitted.params["symbol"].to_list() == ["GOOD"]
    reasons = dict(fitted.failures.select("symbol", "reason").iter_rows())
    assert set(reasons) == {"CONST", "SHORT", "EMPTY", "INF"}
    assert reasons["SHORT"] == "insufficient history: 100 < min_obs 250"
    assert reasons["CONST"].startswith("constant series")
    assert reasons["EMPTY"].startswith("no returns")
    assert reasons["INF"].startswith("non-finite returns")
    assert fitted.metrics()["n_failed"] == 4 and fitted.metrics()["n_fitted"] == 1
    assert fitted.forecast(returns)["symbol"].unique().to_list() == ["GOOD"]


def test_warm_start_uses_previous_fit(sim: pl.DataFrame, sim_fit: FittedVol) -> None:
    refit = fit_vol(sim, sim_fit.config, previous=sim_fit, workers=1)
    cold, warm = sim_fit.params.row(0, named=True), refit.params.row(0, named=True)
    assert warm["warm_started"] and not cold["warm_started"]
    for name in ("mu", "omega", "alpha", "beta", "nu"):
        assert warm[name] == pytest.approx(cold[name], rel=2e-3), name
    print(f"optimizer iterations: cold {cold['iterations']}, warm {warm['iterations']}")
    assert warm["iterations"] <= cold["iterations"]
    assert warm["func_evals"] <= cold["func_evals"]
    assert refit.metrics()["n_warm_started"] == 1
    # parameters arch rejects for this data (omega far outside its bounds): a cold fit, flagged
    absurd = FittedVol(sim_fit.params.with_columns(pl.col("omega") * 1e6), sim_fit.failures, sim_fit.config)
    rejected = fit_vol(sim.head(2000), sim_fit.config, previous=absurd, workers=1)
    assert not rejected.params["warm_started"][0] and rejected.params["converged"][0]
    # a previous fit of another model is not used
    other = fit_vol(sim.head(2000), VolConfig(model="gjr"), previous=sim_fit, workers=1)
    assert not other.params["warm_started"][0]


def test_warm_start_fit_never_sees_data_after_the_refit(tmp_path, sim_fit: FittedVol) -> None:  # noqa: ANN001
    """Only the published fit in force may warm-start a refit, only if its as_of is <= the refit's, and only
    with the same config: a start from a fit on later data would carry the future into the refit."""

    def publish(fit: FittedVol, as_of: str) -> None:
        artifacts.set_current(tmp_path, "volatility", fit.save_artifact(tmp_path), {"as_of": as_of})

    config = sim_fit.config
    assert warm_start_fit(tmp_path, config, dt.date(2030, 1, 1)) is None  # nothing published yet
    publish(sim_fit, "2020-06-30")
    assert warm_start_fit(tmp_path, config, dt.date(2020, 6, 29)) is None  # the fit saw a later day
    for as_of in (dt.date(2020, 6, 30), dt.date(2020, 7, 1)):
        previous = warm_start_fit(tmp_path, config, as_of)
        assert previous is not None and previous.config == config and previous.params.equals(sim_fit.params)
    assert warm_start_fit(tmp_path, VolConfig(model="gjr"), dt.date(2020, 7, 1)) is None  # another config
    # The fit in force decides, not the history: an older publication is not fallen back on.
    older = FittedVol(sim_fit.params.head(0), sim_fit.failures, config)
    publish(older, "2020-01-31")
    publish(sim_fit, "2020-06-30")
    assert warm_start_fit(tmp_path, config, dt.date(2020, 3, 31)) is None


def test_parallel_fit_equals_sequential() -> None:
    returns = frame({f"S{i}": simulate_pct(800, seed=20 + i) / 100 for i in range(3)} | {"SHORT": [0.01] * 20})
    sequential = fit_vol(returns, VolConfig(model="gjr"), workers=1)
    parallel = fit_vol(returns, VolConfig(model="gjr"), workers=2)
    assert parallel.params.equals(sequential.params)
    assert parallel.failures.equals(sequential.failures)
    assert parallel.params.height == 3 and parallel.failures["symbol"].to_list() == ["SHORT"]


# --------------------------------------------------------------------------------------------
# Config, artifacts, plot
# --------------------------------------------------------------------------------------------


def test_config_from_params() -> None:
    config = VolConfig.from_params({"model": "gjr", "min_obs": 500, "refit_every": 5})
    assert (config.model, config.o, config.min_obs, config.scale, config.refit_every) == ("gjr", 1, 500, 100.0, 5)
    assert VolConfig.from_params(config.to_params()) == config
    assert VolConfig.from_params(None) == VolConfig()
    for bad in ({"model": "egarch"}, {"modle": "garch"}, {"min_obs": 2.5}, {"dist": "normal"}, {"scale": 0}):
        with pytest.raises(VolError):
            VolConfig.from_params(bad)


def test_save_load_round_trip_is_content_addressed(tmp_path, sim: pl.DataFrame) -> None:  # noqa: ANN001
    returns = pl.concat([sim.head(1200), frame({"SHORT": [0.01] * 30})])
    fitted = fit_vol(returns, VolConfig(model="gjr", min_obs=300), workers=1)
    path = fitted.save_artifact(tmp_path)
    assert path.parent == tmp_path / "volatility" and sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "failures.parquet",
        "params.parquet",
    ]
    loaded = FittedVol.load(path)
    assert loaded.config == fitted.config
    assert loaded.params.equals(fitted.params) and loaded.failures.equals(fitted.failures)
    assert loaded.forecast(returns).equals(fitted.forecast(returns))
    # the same fit saves to the same place; a different fit elsewhere
    assert fit_vol(returns, VolConfig(model="gjr", min_obs=300), workers=1).save_artifact(tmp_path) == path
    assert fit_vol(returns, VolConfig(model="garch", min_obs=300), workers=1).save_artifact(tmp_path) != path
    assert loaded.metrics()["failure_reasons"] == {"insufficient history": 1}


def test_plot_writes_png(tmp_path, sim: pl.DataFrame, sim_fit: FittedVol) -> None:  # noqa: ANN001
    returns = sim.head(500)
    out = plot_vol_forecast(
        sim_fit.forecast(returns), returns, "SIM", tmp_path / "vol.png", baseline=rolling_std_baseline(returns)
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
