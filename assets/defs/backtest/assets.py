"""``backtest`` partitioned by variant and ``backtest_report`` (see ``mem_pipeline.backtest``).

A run over several variants (a backfill runs as one run) reads the history once and fits each refit day's
models once for every variant that uses the live models; one variant alone refits its own."""

import dataclasses
import datetime as dt
import tempfile
from pathlib import Path

import dagster as dg
import polars as pl

from assets.metadata import markdown_table, png_markdown
from assets.pools import WAREHOUSE_POOL
from assets.resources import LakeResource, MarketDataResource
from mem_pipeline.backtest.plots import plot_equity_and_drawdowns
from mem_pipeline.backtest.report import build_report
from mem_pipeline.backtest.run import BacktestParams, BacktestRun, law_cost_model, run_backtest, setup
from mem_pipeline.backtest.stats import summarize
from mem_pipeline.backtest.tuning import load_best, load_trial_sharpes, tune
from mem_pipeline.backtest.variants import ORACLE, VARIANTS
from mem_pipeline.backtest.walk_forward import FitCache

VARIANT_PARTITIONS = dg.StaticPartitionsDefinition(list(VARIANTS))
WAREHOUSE = ["fct_features_daily", "fct_labels_daily", "int_bars__returns", "int_market__daily"]
TUNING = "tuning"  # under data/backtest/


class BacktestWindowConfig(dg.Config):
    """Narrow one run (``make demo`` backtests 30 symbols over the cross-section's last quarter); empty:
    ``backtest.run`` and ``backtest.tuning`` in params.yaml. Give the tuning and the backtest the same values: the
    backtest refuses a tuning that saw its window or another universe."""

    start: str = ""
    end: str = ""
    symbols: list[str] = []
    n_trials: int = -1
    """-1: backtest.tuning.n_trials."""

    def params(self) -> BacktestParams:
        params = BacktestParams.from_params_file()
        run = dataclasses.replace(
            params.run,
            start=dt.date.fromisoformat(self.start) if self.start else params.run.start,
            end=dt.date.fromisoformat(self.end) if self.end else params.run.end,
            symbols=tuple(self.symbols) or params.run.symbols,
        )
        tuning = dataclasses.replace(params.tuning, n_trials=self.n_trials) if self.n_trials >= 0 else params.tuning
        return dataclasses.replace(params, run=run, tuning=tuning)


@dg.asset(
    group_name="backtest",
    kinds={"optuna"},
    deps=[dg.AssetKey(name) for name in WAREHOUSE],
    pool=WAREHOUSE_POOL,
    description="Optuna trials of MEM's risk, decision and signal parameters, scored on the validation window "
    "before the backtest's (backtest.tuning in params.yaml); the best becomes MEM's in the backtest.",
)
def backtest_tuning(
    context: dg.AssetExecutionContext, config: BacktestWindowConfig, lake: LakeResource, market: MarketDataResource
):
    paths = lake.paths()
    at = setup(paths, market.source, config.params())
    params = at.params
    result = tune(at.history, at.start, params, law_cost_model(params.paper), params.tuning, at.universe)
    folder = result.save(paths.backtest / TUNING)
    context.log.info(f"backtest_tuning: {result.trials.height} trials, best {result.best}")
    return dg.MaterializeResult(
        metadata={
            "folder": str(folder),
            "trials": result.trials.height,
            "validation_window": f"{result.window[0]} .. {result.window[1]}" if result.window else "no trial",
            "best": dg.MetadataValue.json(result.best),
            "best_sharpe": float(result.trials["value"].max()) if result.trials.height else float("nan"),
            "table": dg.MetadataValue.md(markdown_table(result.trials.sort("value", descending=True))),
        }
    )


def _figures(run: BacktestRun) -> dict[str, float]:
    d = run.daily
    return summarize(d["equity"].to_numpy(), d["gross_exposure"].to_numpy(), d["traded_notional"].to_numpy(),
                     d["costs"].to_numpy())  # fmt: skip


@dg.asset(
    group_name="backtest",
    kinds={"polars", "lightgbm"},
    partitions_def=VARIANT_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[*[dg.AssetKey(name) for name in WAREHOUSE], backtest_tuning],
    pool=WAREHOUSE_POOL,
    description="Walk-forward replay of the decision kernel (or a baseline) for one variant over the configured "
    "window (backtest.run in params.yaml), traded in the daily simulator.",
)
def backtest(
    context: dg.AssetExecutionContext, config: BacktestWindowConfig, lake: LakeResource, market: MarketDataResource
):
    paths, source = lake.paths(), market.source
    at = setup(paths, source, config.params())
    history = at.history
    params = at.params.with_tuned(load_best(paths.backtest / TUNING, at.start, at.universe))
    cache = FitCache()
    done: dict[str, BacktestRun] = {}
    skipped: dict[str, str] = {}
    for name in context.partition_keys:
        if name == ORACLE and source != "synthetic":
            skipped[name] = f"the oracle needs the synthetic market's ground truth; source is {source!r}"
            context.log.info(f"backtest[{name}]: not applicable: {skipped[name]}")
            continue
        run = run_backtest(paths, source, name, params, history=history, cache=cache)
        run.save(paths.backtest)
        done[name] = run
        context.log.info(f"backtest[{name}]: {run.info['seconds']:.1f}s, final equity {run.daily['equity'][-1]:,.2f}")
    metadata: dict[str, object] = {
        "source": source,
        "folder": str(paths.backtest),
        "tuned": dg.MetadataValue.json(params.tuned),
    }
    if done:
        figures = {name: _figures(run) for name, run in done.items()}
        table = pl.DataFrame([{"variant": n, **{k: round(v, 4) for k, v in f.items()}} for n, f in figures.items()])
        metadata["figures"] = dg.MetadataValue.md(markdown_table(table))
        first = next(iter(done.values()))
        metadata |= {"window": " .. ".join(first.info["window"]), "universe": first.info["universe"]}
        with tempfile.TemporaryDirectory() as tmp:
            curves = {n: (r.daily["trade_date"].to_list(), r.daily["equity"].to_list()) for n, r in done.items()}
            metadata["equity"] = png_markdown(plot_equity_and_drawdowns(curves, Path(tmp) / "equity.png"), "equity")
        if len(done) == 1:
            metadata |= {k: float(v) for k, v in next(iter(figures.values())).items()}
    if skipped:
        metadata["not_applicable"] = dg.MetadataValue.json(skipped)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="backtest",
    kinds={"polars", "matplotlib"},
    deps=[backtest],
    description="Every stored variant compared: performance, PSR, deflated Sharpe, permutation test, bootstrap "
    "intervals, charts; written to data/reports/backtest/.",
)
def backtest_report(context: dg.AssetExecutionContext, lake: LakeResource):
    paths = lake.paths()
    runs = {v: BacktestRun.load(paths.backtest, v) for v in VARIANTS if (paths.backtest / v / "run.json").exists()}
    if not runs:
        raise dg.Failure("no variant has been backtested: materialize backtest (all partitions) first")
    report = build_report(runs, paths.reports / "backtest", tuning_sharpes=load_trial_sharpes(paths.backtest / TUNING))
    metadata: dict[str, object] = {
        "report": str(report.markdown),
        "variants": dg.MetadataValue.md(markdown_table(report.table.with_columns(pl.selectors.float().round(3)))),
        "trials_deflated_by": report.n_trials,
        "verdicts": dg.MetadataValue.md("\n".join(f"- {s}" for s in report.verdicts)),
    }
    for name, path in report.charts.items():
        metadata[f"chart_{name}"] = png_markdown(path, name)
    return dg.MaterializeResult(metadata=metadata)
