"""Tuning MEM's parameters with Optuna, on data before the backtest's window only.

Three windows, in time order: the **training** data (everything before the validation window: each refit fits on
data up to its day, walk-forward), the **validation** window (the ``backtest.tuning.validation_days`` trading
days just before the backtest's start, where each trial's configuration is replayed and scored) and the **test**
window (the backtest's own, which tuning never reads: the history is cut at the validation window's last day
before the first trial).

A trial sets risk, decision and signal parameters (``SPACE``), replays the decision kernel over the validation
window and scores the annualized Sharpe ratio of its equity. Optuna's TPE sampler is seeded, so the same data
and settings give the same trials. Every trial is stored (``trials.parquet``): the report deflates the Sharpe
ratios of the candidates by all of them. The best trial's parameters (``best.json``) become MEM's for the
backtest's kernel variants.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from mem_pipeline.backtest.simulator import BacktestError
from mem_pipeline.backtest.stats import per_period_sharpe
from mem_pipeline.backtest.variants import MEM
from mem_pipeline.backtest.walk_forward import FitCache, History, replay
from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.files import atomic_write_bytes, atomic_write_parquet

#: name -> (section, key, low, high, kind): what a trial sets. ``regime_volatile`` is the volatile regime's
#: multiplier (the calm one stays 1).
SPACE: dict[str, tuple[str, str, float, float, str]] = {
    "kelly_fraction": ("risk", "kelly_fraction", 0.05, 1.0, "log"),
    "min_edge": ("risk", "min_edge", 0.0, 0.03, "float"),
    "cvar_budget": ("risk", "cvar_budget", 0.005, 0.05, "log"),
    "regime_volatile": ("risk", "regime_multipliers", 0.0, 1.0, "float"),
    "max_child_participation": ("decision", "max_child_participation", 0.0005, 0.01, "log"),
    "num_leaves": ("signal", "num_leaves", 3, 31, "int"),
    "learning_rate": ("signal", "learning_rate", 0.005, 0.1, "log"),
    "min_child_samples": ("signal", "min_child_samples", 100, 2000, "int_log"),
}
TRIALS_FILE = "trials.parquet"
TRIAL_SCHEMA = {"number": pl.Int64(), "value": pl.Float64(), "sharpe": pl.Float64(), "params": pl.String()}
BEST_FILE = "best.json"


@dataclass(frozen=True)
class TuningConfig(ParamsConfig):
    """``backtest.tuning`` in params.yaml."""

    SECTION: ClassVar[str] = "backtest.tuning"
    ERROR: ClassVar[type[Exception]] = BacktestError

    n_trials: int = 20  # 0: no tuning (MEM runs on params.yaml's values)
    validation_days: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_trials < 0:
            raise BacktestError(f"backtest.tuning.n_trials must be >= 0, got {self.n_trials}")
        if self.validation_days < 20:
            raise BacktestError(f"backtest.tuning.validation_days must be >= 20, got {self.validation_days}")


def apply(params: Any, chosen: dict[str, float]) -> Any:
    """``params`` (a ``BacktestParams``) with a trial's values set in its risk, decision and signal configs."""
    risk, decision, signal = params.risk, params.decision, params.models.signal
    for name, value in chosen.items():
        section, key = SPACE[name][:2]
        if name == "regime_volatile":
            risk = risk.replace(
                regime_multipliers=(risk.regime_multipliers[0], *[value] * (len(risk.regime_multipliers) - 1))
            )
        elif section == "risk":
            risk = risk.replace(**{key: value})
        elif section == "decision":
            decision = dataclasses.replace(decision, **{key: value})
        else:
            signal = signal.replace(**{key: value})
    return dataclasses.replace(
        params, risk=risk, decision=decision, models=dataclasses.replace(params.models, signal=signal)
    )


def _suggest(trial: Any, name: str) -> float:
    _, _, low, high, kind = SPACE[name]
    if kind == "int":
        return trial.suggest_int(name, int(low), int(high))
    if kind == "int_log":
        return trial.suggest_int(name, int(low), int(high), log=True)
    return trial.suggest_float(name, low, high, log=kind == "log")


@dataclass(frozen=True)
class Tuning:
    trials: pl.DataFrame  # number, value (annualized Sharpe), sharpe (per period), params (JSON)
    best: dict[str, float]
    window: tuple[dt.date, dt.date] | None  # the validation window (None: no trial was run)
    universe: str  # the universe digest of the history tuned on

    def save(self, folder: Path) -> Path:
        atomic_write_parquet(self.trials, folder / TRIALS_FILE)
        payload = {
            "best": self.best,
            "validation_window": [d.isoformat() for d in self.window] if self.window else None,
            "universe_digest": self.universe,
        }
        atomic_write_bytes(json.dumps(payload, indent=2, sort_keys=True).encode(), folder / BEST_FILE)
        return folder


def load_best(folder: Path, test_start: dt.date, universe: str) -> dict[str, float]:
    """The best trial's parameters for a backtest from ``test_start`` on ``universe`` (a digest), or none when
    tuning has not run. Raises when the tuning read data on or after ``test_start`` (a lookahead) or tuned
    another universe."""
    path = folder / BEST_FILE
    if not path.exists():
        return {}
    stored = json.loads(path.read_text(encoding="utf-8"))
    if not stored["best"]:
        return {}
    last = dt.date.fromisoformat(stored["validation_window"][1])
    if last >= test_start or stored["universe_digest"] != universe:
        raise BacktestError(
            f"{path}: the tuning validated up to {last} on universe {stored['universe_digest']}; this backtest "
            f"starts {test_start} on universe {universe}: materialize backtest_tuning again (or delete {path})"
        )
    return dict(stored["best"])


def load_trial_sharpes(folder: Path) -> list[float]:
    """Per-period Sharpe ratios of the stored trials (none until tuning has run)."""
    path = folder / TRIALS_FILE
    return pl.read_parquet(path)["sharpe"].to_list() if path.exists() else []


def validation_window(history: History, test_start: dt.date, days: int) -> tuple[dt.date, dt.date]:
    """The ``days`` trading days (with features) just before ``test_start``."""
    before = sorted(d for d in history.features["trade_date"].unique().to_list() if d < test_start)
    if len(before) < days + 20:
        raise BacktestError(
            f"tuning: {len(before)} days of features before the backtest's start {test_start} cannot hold a "
            f"validation window of {days} days after some training data"
        )
    return before[-days], before[-1]


def tune(
    history: History, test_start: dt.date, params: Any, cost_model: Any, config: TuningConfig, universe: str = ""
) -> Tuning:
    """Run ``config.n_trials`` Optuna trials (see the module docstring) and return every trial and the best."""
    import optuna

    if config.n_trials == 0:
        return Tuning(pl.DataFrame(schema=TRIAL_SCHEMA), {}, None, universe)
    start, end = validation_window(history, test_start, config.validation_days)
    seen = history.until(end)  # the test window is not even in memory
    cache = FitCache()

    def objective(trial: Any) -> float:
        chosen = {name: _suggest(trial, name) for name in SPACE}
        trial_params = apply(params, chosen)
        run = replay(
            seen,
            start,
            end,
            cost_model,
            variant=trial_params.variant(MEM),
            configs=trial_params.models,
            walk=trial_params.walk,
            simulator=trial_params.simulator,
            paper=trial_params.paper,
            cache=cache,
        )
        sharpe = per_period_sharpe(run.equity()["equity"].to_numpy())
        trial.set_user_attr("sharpe", sharpe)
        return sharpe * math.sqrt(252)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=config.seed))
    study.optimize(objective, n_trials=config.n_trials)
    done = [t for t in study.trials if t.value is not None]
    trials = pl.DataFrame(
        {
            "number": [t.number for t in done],
            "value": [float(t.value) for t in done],
            "sharpe": [float(t.user_attrs["sharpe"]) for t in done],
            "params": [json.dumps(t.params, sort_keys=True) for t in done],
        },
        schema=TRIAL_SCHEMA,
    )
    best = dict(study.best_trial.params) if done else {}
    return Tuning(trials, best, (start, end), universe)
