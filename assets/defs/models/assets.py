"""Models as assets: each asset loads its inputs, calls a ``mem_pipeline.models`` fit, saves a
content-addressed artifact, and reports metrics, a plot and its quality checks.

Models are unpartitioned: a refit reads all history up to ``as_of`` (default: all the data there is,
i.e. up to the latest partition) and never beyond it. Refits run on the ``models`` job's schedule.
"""

import datetime as dt
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from assets.metadata import check, markdown_table, png_markdown
from assets.pools import WAREHOUSE_POOL
from assets.resources import LakeResource
from mem_pipeline.core.files import atomic_write_parquet
from mem_pipeline.core.params import model_params, section
from mem_pipeline.execution.runtime import open_ledger
from mem_pipeline.features.warehouse import read_relation
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, cached_market, simulate_fills
from mem_pipeline.models import artifacts
from mem_pipeline.models.regime import RegimeConfig, fit_regime, plot_regimes
from mem_pipeline.models.slippage import SlippageConfig, fit_slippage, plot_predicted_vs_realized
from mem_pipeline.models.volatility import (
    VolConfig,
    fit_vol,
    plot_vol_forecast,
    qlike,
    rolling_std_baseline,
    warm_start_fit,
)


class RefitConfig(dg.Config):
    """``as_of`` (YYYY-MM-DD): fit on data up to this date only. Empty: all the data there is."""

    as_of: str = ""

    def date(self) -> dt.date | None:
        return dt.date.fromisoformat(self.as_of) if self.as_of else None


def publish(paths, name: str, save, info: dict) -> Path:
    artifact = artifacts.save_artifact(paths.models, name, save)
    artifacts.set_current(paths.models, name, artifact, info)
    return artifact


@dg.asset(
    group_name="models",
    kinds={"statsmodels"},
    deps=[dg.AssetKey("int_market__daily")],
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec("converged", asset="regime_model", blocking=True),
        dg.AssetCheckSpec("finite_parameters", asset="regime_model", blocking=True),
        dg.AssetCheckSpec("regimes_separated", asset="regime_model", blocking=True),
    ],
    description="Markov-switching regimes of the equal-weighted market return (switching mean and variance).",
)
def regime_model(context: dg.AssetExecutionContext, config: RefitConfig, lake: LakeResource):
    paths = lake.paths()
    settings, checks = model_params("regime")
    market = read_relation(paths, "int_market__daily", ["trade_date", "mkt_ret_1d"], config.date())
    returns = market.rename({"mkt_ret_1d": "mkt_ret"}).drop_nulls()
    fitted = fit_regime(returns, RegimeConfig.from_params(settings))
    artifact = publish(paths, "regime", fitted.save, {"as_of": str(returns["trade_date"].max())})
    probs = fitted.filtered_probabilities(returns)
    with tempfile.TemporaryDirectory() as tmp:
        plot = png_markdown(plot_regimes(returns, probs, Path(tmp) / "regimes.png"), "filtered regime probabilities")
    metrics = fitted.metrics()
    finite = bool(np.isfinite(np.r_[fitted.means, fitted.vols, np.ravel(fitted.transition)]).all())
    ratio = float(max(fitted.vols) / min(fitted.vols))
    yield check("converged", fitted.converged, fitted.n_converged, 1, starts=fitted.n_starts)
    yield check("finite_parameters", finite, float(finite), 1.0)
    yield check(
        "regimes_separated", ratio >= checks.get("min_vol_ratio", 1.25), ratio, checks.get("min_vol_ratio", 1.25)
    )
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(artifact.name),
        metadata={
            "artifact": str(artifact),
            "fitted_on": f"{fitted.start_date} .. {fitted.end_date} ({fitted.n_obs} days)",
            "metrics": dg.MetadataValue.json(metrics),
            "plot": plot,
        },
    )


@dg.asset(
    group_name="models",
    kinds={"arch"},
    deps=[dg.AssetKey("int_bars__returns")],
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "fitted_share",
            asset="vol_forecasts",
            blocking=True,
            description="share of symbols with at least min_obs returns whose fit converged and is stationary",
        ),
        dg.AssetCheckSpec("finite_positive_forecasts", asset="vol_forecasts", blocking=True),
    ],
    description="One-step-ahead volatility per symbol and date from per-symbol GARCH/GJR-t fits (warm-started).",
)
def vol_forecasts(context: dg.AssetExecutionContext, config: RefitConfig, lake: LakeResource):
    paths = lake.paths()
    settings, checks = model_params("volatility")
    returns = read_relation(paths, "int_bars__returns", ["symbol", "trade_date", "ret_1d"], config.date())
    vol_config = VolConfig.from_params(settings)
    as_of = returns["trade_date"].max()
    fitted = fit_vol(returns, vol_config, previous=warm_start_fit(paths.models, vol_config, as_of))
    artifact = publish(paths, "volatility", fitted.save, {"as_of": str(returns["trade_date"].max())})
    forecast = fitted.forecast(returns)
    atomic_write_parquet(forecast, paths.forecasts / "vol_forecasts.parquet")

    # Symbols with too little history are reported, not counted against the fit (they had nothing to fit).
    counts = returns.drop_nulls("ret_1d").group_by("symbol").len()
    eligible = counts.filter(pl.col("len") >= vol_config.min_obs).height
    share = fitted.params.height / eligible if eligible else 0.0
    values = forecast["vol_forecast"]
    finite = bool(values.len() and values.is_finite().all() and (values > 0).all())
    yield check(
        "fitted_share",
        share >= checks.get("min_fitted_share", 0.9),
        share,
        checks.get("min_fitted_share", 0.9),
        failures=dg.MetadataValue.md(markdown_table(fitted.failures)),
    )
    yield check("finite_positive_forecasts", finite, float(finite), 1.0)
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(artifact.name),
        metadata={
            "artifact": str(artifact),
            "forecasts": str(paths.forecasts / "vol_forecasts.parquet"),
            "symbols_fitted": fitted.params.height,
            "symbols_failed": fitted.failures.height,
            "warm_started": int(fitted.params["warm_started"].sum()),
            "qlike_vs_next_day_squared_return": dg.MetadataValue.json(_qlike_table(returns, forecast)),
            "parameters": dg.MetadataValue.md(
                markdown_table(
                    fitted.params.select("symbol", "omega", "alpha", "gamma", "beta", "nu", "persistence", "n_obs")
                )
            ),
            "plot": _vol_plot(forecast, returns),
        },
    )


def _qlike_table(returns: pl.DataFrame, forecast: pl.DataFrame) -> dict[str, float]:
    """QLIKE of GARCH and a 20-day rolling std against the next day's squared return (a noisy proxy of
    the true variance on real data; on the synthetic market, scored against the truth in bench/)."""
    baseline = rolling_std_baseline(returns.select("symbol", "trade_date", "ret_1d"), window=20).rename(
        {"vol_forecast": "rolling_std_20d"}
    )
    nxt = returns.with_columns(next_sq=pl.col("ret_1d").shift(-1).over("symbol").pow(2)).select(
        "symbol", "trade_date", "next_sq"
    )
    joined = forecast.join(baseline, on=["symbol", "trade_date"]).join(nxt, on=["symbol", "trade_date"]).drop_nulls()
    joined = joined.filter(pl.col("next_sq") > 0)
    truth = joined["next_sq"].to_numpy()
    return {
        "garch": float(qlike(joined["vol_forecast"].to_numpy() ** 2, truth)),
        "rolling_std_20d": float(qlike(joined["rolling_std_20d"].to_numpy() ** 2, truth)),
        "n": joined.height,
    }


def _vol_plot(forecast: pl.DataFrame, returns: pl.DataFrame) -> dg.MetadataValue:
    symbol = forecast.group_by("symbol").len().sort("len", descending=True)["symbol"][0]
    with tempfile.TemporaryDirectory() as tmp:
        return png_markdown(plot_vol_forecast(forecast, returns, symbol, Path(tmp) / "vol.png"), f"{symbol} volatility")


@dg.asset(
    group_name="models",
    kinds={"lightgbm"},
    check_specs=[
        dg.AssetCheckSpec("mae_within_noise_floor", asset="slippage_model", blocking=True),
        dg.AssetCheckSpec("beats_square_root_law", asset="slippage_model"),
        dg.AssetCheckSpec("p90_coverage", asset="slippage_model"),
    ],
    description="Expected and p90/p95 execution cost (bps) of an order, LightGBM against the square-root law.",
)
def slippage_model(context: dg.AssetExecutionContext, lake: LakeResource):
    paths = lake.paths()
    settings, checks = model_params("slippage")
    # Until the execution ledger holds real fills, train on fills simulated by the synthetic market.
    market = cached_market(SyntheticConfig.from_params(section("sources").get("synthetic") or {}))
    fills = simulate_fills(market, int(checks.get("n_fills", 50_000)), seed=int(checks.get("seed", 11)))
    # The execution ledger's fills (paper or live) join the training rows: the loop from execution closes here.
    ledger = open_ledger(paths)
    try:
        ledger_fills = ledger.fills_for_training()
    finally:
        ledger.close()
    fitted = fit_slippage(fills, SlippageConfig.from_params(settings), extra_train=ledger_fills)
    artifact = fitted.save_artifact(paths.models)
    info = {"training": "simulated + ledger fills", "n_fills": fills.height, "n_ledger_fills": ledger_fills.height}
    if ledger_fills.height:  # trained on dated fills: no decision before the last of them may use it
        info["as_of"] = str(ledger_fills["date"].max())
    artifacts.set_current(paths.models, "slippage", artifact, info)
    m = fitted.metrics()
    limit = float(checks.get("max_mae_over_floor", 1.15))
    ratio = m["mae_ratio_to_floor"]
    with tempfile.TemporaryDirectory() as tmp:
        plot = png_markdown(plot_predicted_vs_realized(fitted, fills, Path(tmp) / "slippage.png"), "slippage")
    yield check("mae_within_noise_floor", ratio <= limit, ratio, limit)
    yield check("beats_square_root_law", m["mae_model"] < m["mae_baseline"], m["mae_model"], m["mae_baseline"])
    yield check("p90_coverage", 0.85 <= m["coverage_p90"] <= 0.95, m["coverage_p90"], 0.9)
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(artifact.name),
        metadata={"artifact": str(artifact), "metrics": dg.MetadataValue.json(m), "plot": plot},
    )
