"""The backtest report: every stored variant side by side, with honest statistics and charts.

Per variant: CAGR, volatility, Sharpe (with a block-bootstrap 95% interval), Sortino, maximum drawdown, Calmar,
turnover, hit rate, exposure, cost drag, the probabilistic Sharpe ratio against 0, and for the candidates (MEM,
the static system, the ablations and every tuning trial: what was tried to pick a configuration) the deflated
Sharpe ratio against the best Sharpe that many trials would show by luck. Baselines (buy and hold, the oracle)
were not candidates and are not deflated. The permutation test shuffles each variant's daily book (target
notional per symbol) across dates within each symbol and asks how often the shuffled book earns the realized
next-day returns at least as well (the book's timing, not its costs).

Written to ``data/reports/backtest/``: ``report.md`` (the table, the verdicts, the charts), ``variants.csv`` and
the PNGs; the ``backtest_report`` asset embeds the same in its metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from mem_pipeline.backtest.plots import (
    plot_calibration,
    plot_cost_vs_size,
    plot_equity_and_drawdowns,
    plot_regime_shading,
)
from mem_pipeline.backtest.run import BacktestRun
from mem_pipeline.backtest.simulator import BacktestError
from mem_pipeline.backtest.stats import deflated_sharpe_ratio, per_period_sharpe, permutation_pvalue, summarize
from mem_pipeline.backtest.variants import BUY_AND_HOLD, MEM, ORACLE, STATIC, VARIANTS
from mem_pipeline.execution.brokers.paper import PaperConfig
from mem_pipeline.execution.impact import impact_cost_bps

BASELINES = (BUY_AND_HOLD, ORACLE)
SWITCHED_ON = ("memory_weighting",)  # ablations that turn on what MEM's defaults leave off
N_PERMUTATIONS = 1000
COLUMNS = ("cagr", "volatility", "sharpe", "sharpe_ci_low", "sharpe_ci_high", "sortino", "max_drawdown", "calmar",
           "turnover", "hit_rate", "exposure", "cost_drag", "psr", "dsr", "permutation_p")  # fmt: skip


@dataclass(frozen=True)
class Report:
    table: pl.DataFrame  # one row per variant: variant, days, final_equity and COLUMNS
    n_trials: int
    verdicts: list[str]
    charts: dict[str, Path]
    markdown: Path


def book_pvalue(signals: pl.DataFrame, n_perm: int = N_PERMUTATIONS, seed: int = 0) -> float:
    """The permutation test of a variant's daily book (see the module docstring); NaN without a book."""
    book = signals.filter(pl.col("next_ret").is_not_null()).select(
        "trade_date", "symbol", "target_notional", "next_ret"
    )
    if book.height == 0 or book["target_notional"].abs().sum() == 0:
        return math.nan
    weights = book.pivot(on="symbol", index="trade_date", values="target_notional", sort_columns=True).sort(
        "trade_date"
    )
    returns = book.pivot(on="symbol", index="trade_date", values="next_ret", sort_columns=True).sort("trade_date")
    return permutation_pvalue(
        weights.drop("trade_date").to_numpy(), returns.drop("trade_date").to_numpy(), n_perm=n_perm, seed=seed
    )


def check_comparable(runs: Mapping[str, BacktestRun]) -> None:
    """Every run must replay the same window and universe (or the table compares different things)."""
    keys = {name: (tuple(r.info["window"]), r.info["universe_digest"], r.info["source"]) for name, r in runs.items()}
    if len(set(keys.values())) > 1:
        shown = "; ".join(f"{n}: {k[2]} {k[0][0]}..{k[0][1]} universe {k[1]}" for n, k in keys.items())
        raise BacktestError(f"backtest report: the variants replayed different windows or universes ({shown})")


def variant_table(runs: Mapping[str, BacktestRun], tuning_sharpes: Sequence[float] = ()) -> tuple[pl.DataFrame, int]:
    """The per-variant figures and the number of trials the candidates were deflated by."""
    candidates = [n for n in runs if n not in BASELINES]
    trials = [per_period_sharpe(runs[n].daily["equity"].to_numpy()) for n in candidates] + list(tuning_sharpes)
    rows = []
    for name in [v for v in VARIANTS if v in runs]:
        daily = runs[name].daily
        e = daily["equity"].to_numpy()
        figures = summarize(e, daily["gross_exposure"].to_numpy(), daily["traded_notional"].to_numpy(),
                            daily["costs"].to_numpy())  # fmt: skip
        returns = e[1:] / e[:-1] - 1
        deflatable = name not in BASELINES and returns.std() > 0 and len(trials) > 1
        figures["dsr"] = deflated_sharpe_ratio(returns, np.asarray(trials)) if deflatable else math.nan
        figures["permutation_p"] = book_pvalue(runs[name].signals) if name != BUY_AND_HOLD else math.nan
        rows.append({"variant": name, "days": len(e), "final_equity": float(e[-1]), **{c: figures[c] for c in COLUMNS}})
    return pl.DataFrame(rows), len(trials)


def verdicts(table: pl.DataFrame) -> list[str]:
    """Plain sentences: MEM against the static system and buy and hold, and each ablation against MEM."""
    rows = {r["variant"]: r for r in table.iter_rows(named=True)}
    if MEM not in rows:
        return ["MEM itself was not backtested: no verdict."]
    mem = rows[MEM]
    out = []
    for other in (STATIC, BUY_AND_HOLD, ORACLE):
        if other in rows:
            o = rows[other]
            out.append(
                f"MEM {_word(mem['sharpe'], o['sharpe'])} {other} on Sharpe: {mem['sharpe']:.2f} vs {o['sharpe']:.2f} "
                f"({_significance(mem, o, other)}); CAGR {mem['cagr']:.2%} vs {o['cagr']:.2%}, max drawdown "
                f"{mem['max_drawdown']:.2%} vs {o['max_drawdown']:.2%}."
            )
    for name, r in rows.items():
        if name in (MEM, STATIC, *BASELINES):
            continue
        delta = mem["sharpe"] - r["sharpe"]
        if abs(delta) < 1e-9:
            out.append(f"{name}: identical to MEM on this run (the switch never changed a decision).")
        elif name in SWITCHED_ON:  # off in MEM's defaults: the variant turns it on
            effect = "turning it on hurt" if delta > 0 else "turning it on helped"
            out.append(f"{name}: Sharpe {r['sharpe']:.2f} vs MEM's {mem['sharpe']:.2f} ({effect}).")
        else:
            effect = "the component helped" if delta > 0 else "the component hurt"
            out.append(f"{name}: Sharpe {r['sharpe']:.2f} vs MEM's {mem['sharpe']:.2f} ({effect}).")
    if not math.isnan(mem["psr"]):
        out.append(
            f"MEM's probabilistic Sharpe ratio is {mem['psr']:.2f}, deflated {mem['dsr']:.2f}; the permutation test's "
            f"p-value is {mem['permutation_p']:.3f}."
        )
    return out


#: The figures ``metrics.json`` keeps per variant.
METRICS = ("sharpe", "sharpe_ci_low", "sharpe_ci_high", "cagr", "max_drawdown", "turnover", "cost_drag", "dsr")


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return float(value) if math.isfinite(value) else None


def _word(mine: float, theirs: float) -> str:
    return "ties with" if abs(mine - theirs) < 1e-12 else ("beats" if mine > theirs else "loses to")


def _significance(mem: dict, other: dict, name: str) -> str:
    bounds = (mem["sharpe_ci_low"], mem["sharpe_ci_high"], other["sharpe_ci_low"], other["sharpe_ci_high"])
    if any(math.isnan(b) for b in bounds):
        flat = [who for who, r in (("MEM", mem), (name, other)) if math.isnan(r["sharpe_ci_low"])]
        return f"no bootstrap interval for {' and '.join(flat)}: no return variation to resample"
    overlap = bounds[0] <= bounds[3] and bounds[2] <= bounds[1]
    if overlap:
        return "the 95% bootstrap intervals of Sharpe overlap: not a significant difference"
    return "the 95% bootstrap intervals of Sharpe do not overlap"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else ("∞" if math.isinf(value) else f"{value:.3f}")
    return str(value)


def markdown_table(table: pl.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    lines = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table.iter_rows()]
    return "\n".join([header, rule, *lines])


def _law_curve(fills: pl.DataFrame, paper: PaperConfig) -> tuple[np.ndarray, np.ndarray]:
    """The law's expected cost over the fills' size range at their median volatility and spread."""
    sizes = fills["size_over_adv"].to_numpy()
    sizes = sizes[sizes > 0]
    grid = np.geomspace(sizes.min(), sizes.max(), 50)
    sigma, spread = float(fills["sigma"].median()), float(fills["spread_bps"].median())
    cost = impact_cost_bps(grid, sigma, spread, 0.0, eta=paper.eta, delta=paper.delta, noise_scale=paper.noise_scale)
    return grid, cost


def charts(runs: Mapping[str, BacktestRun], folder: Path, paper: PaperConfig) -> dict[str, Path]:
    out = {}
    curves = {n: (r.daily["trade_date"].to_list(), r.daily["equity"].to_list()) for n, r in runs.items()}
    out["equity"] = plot_equity_and_drawdowns(curves, folder / "equity.png")
    mem = runs.get(MEM)
    if mem is not None and mem.regimes.height and "mkt_ret" in mem.regimes.columns:
        volatile = sorted(c for c in mem.regimes.columns if c.startswith("p_regime_"))[-1]
        out["regimes"] = plot_regime_shading(
            mem.regimes["trade_date"].to_list(), mem.regimes["mkt_ret"].to_numpy(), mem.regimes[volatile].to_numpy(),
            folder / "regimes.png",
        )  # fmt: skip
    calibration = {}
    for name in (MEM, "no_calibration", STATIC, ORACLE):
        if name in runs:
            s = runs[name].signals.filter(pl.col("next_ret").is_not_null() & pl.col("p_up").is_not_nan())
            if s.height >= 10:
                calibration[name] = (s["p_up"].to_numpy(), (s["next_ret"] > 0).cast(pl.Float64).to_numpy())
    if calibration:
        out["calibration"] = plot_calibration(calibration, folder / "calibration.png")
    fills = {n: (r.fills["size_over_adv"].to_numpy(), r.fills["cost_bps"].to_numpy())
             for n, r in runs.items() if n in (MEM, "no_cost_aware_schedule", STATIC)
             and (r.fills["size_over_adv"] > 0).any()}  # fmt: skip
    if fills:
        every = pl.concat([runs[n].fills for n in fills])
        out["costs"] = plot_cost_vs_size(fills, _law_curve(every, paper), folder / "costs.png")
    return out


def build_report(
    runs: Mapping[str, BacktestRun],
    folder: Path,
    *,
    tuning_sharpes: Sequence[float] = (),
    paper: PaperConfig | None = None,
) -> Report:
    """Compare ``runs`` (variant -> stored run), write the report under ``folder`` and return it: ``report.md``,
    ``variants.csv``, ``metrics.json`` (each variant's figures, what ``dvc metrics``/``dvc exp show`` compare) and
    the charts. Nothing in them depends on when or where they were written (no wall clock, no absolute path)."""
    if not runs:
        raise BacktestError("backtest report: no variant has been backtested (materialize the backtest asset)")
    check_comparable(runs)
    table, n_trials = variant_table(runs, tuning_sharpes)
    sentences = verdicts(table)
    drawn = charts(runs, folder, paper or PaperConfig())
    info = next(iter(runs.values())).info
    missing = [v for v in VARIANTS if v not in runs]
    lines = [
        "# Backtest report",
        "",
        f"Source `{info['source']}`, {info['universe']} symbols, {info['window'][0]} .. {info['window'][1]}, "
        f"starting equity {info['starting_equity']:,.0f}.",
        f"Deflated Sharpe ratios count {n_trials} trials (the candidate variants and tuning trials tried).",
        "",
        markdown_table(table),
        "",
        *[f"- {s}" for s in sentences],
    ]
    if missing:
        lines += ["", f"Not in this report (not materialized or not applicable): {', '.join(missing)}."]
    lines += ["", *[f"![{name}]({path.name})" for name, path in drawn.items()], ""]
    folder.mkdir(parents=True, exist_ok=True)
    table.write_csv(folder / "variants.csv")
    figures = {r["variant"]: {k: _finite(r[k]) for k in METRICS} for r in table.iter_rows(named=True)}
    (folder / "metrics.json").write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    markdown = folder / "report.md"
    markdown.write_text("\n".join(lines), encoding="utf-8")
    return Report(table, n_trials, sentences, drawn, markdown)
