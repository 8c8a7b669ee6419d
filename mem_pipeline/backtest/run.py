"""One backtest variant, end to end: read the history from the warehouse and the lake, replay the decision kernel
(or trade the buy-and-hold baseline) over the window, and store the books under ``data/backtest/<variant>/``.

The window (``backtest.run``): ``start`` .. ``end``, by default the span in which at least half of the universe
has features (every day, if no day has half), starting ``warmup_days`` trading days into it (the models need
history before the first decision): a universe that grows or shrinks, as the bundled sample's two index series
around its one year of 524 stocks, is backtested where its cross-section is.
``symbols`` narrows the universe (empty: every symbol of the source) and ``exclude`` leaves symbols out. Every
variant of one backtest must share the window and universe: ``run.json`` records both, and the report refuses
a mix.

Stored per variant: ``daily.parquet`` (trade_date, equity, cash, gross_exposure, traded_notional, costs; the
first row is the start, before any fill), ``signals.parquet`` (each day's p_up and target notional per symbol,
with the realized next-day return), ``regimes.parquet`` (each day's regime probabilities and market return),
``fills.parquet`` and ``run.json``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from mem_pipeline.backtest.baselines import buy_and_hold
from mem_pipeline.backtest.simulator import BacktestError, Market, SimResult, SimulatorConfig
from mem_pipeline.backtest.tuning import TuningConfig, apply
from mem_pipeline.backtest.variant_signals import Oracle
from mem_pipeline.backtest.variants import BUY_AND_HOLD, ORACLE, VARIANTS, StaticConfig, Variant, kernel_variant
from mem_pipeline.backtest.walk_forward import FitCache, History, ModelConfigs, WalkForwardConfig, replay
from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.files import atomic_write_bytes, atomic_write_parquet
from mem_pipeline.core.params import model_params
from mem_pipeline.core.paths import Paths
from mem_pipeline.decisions.config import DecisionConfig
from mem_pipeline.decisions.inputs import CostModel
from mem_pipeline.execution.brokers.paper import PaperConfig
from mem_pipeline.execution.impact import impact_cost_bps
from mem_pipeline.ingest.sources.synthetic import load_truth
from mem_pipeline.memory.decision_memory import MemoryConfig
from mem_pipeline.models.regime import RegimeConfig
from mem_pipeline.models.signal import SignalConfig
from mem_pipeline.models.volatility import VolConfig
from mem_pipeline.risk.config import RiskConfig

FRAMES = ("daily", "signals", "regimes", "fills")
FILL_SCHEMA = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "quantity": pl.Float64(),
    "price": pl.Float64(),
    "cost_bps": pl.Float64(),
    "fee": pl.Float64(),
    "size_over_adv": pl.Float64(),
    "sigma": pl.Float64(),
    "spread_bps": pl.Float64(),
    "slices": pl.Int64(),
}


@dataclass(frozen=True)
class BacktestConfig(ParamsConfig):
    """``backtest.run`` in params.yaml: the window and universe every variant replays."""

    SECTION: ClassVar[str] = "backtest.run"
    ERROR: ClassVar[type[Exception]] = BacktestError

    start: dt.date | None = None
    end: dt.date | None = None
    warmup_days: int = 140
    symbols: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.warmup_days < 20:
            raise BacktestError(f"backtest.run.warmup_days must be >= 20, got {self.warmup_days}")
        if self.start and self.end and self.start > self.end:
            raise BacktestError(f"backtest.run: start {self.start} is after end {self.end}")


@dataclass(frozen=True)
class BacktestParams:
    """Every config a backtest reads (params.yaml's sections, or a test's)."""

    run: BacktestConfig = field(default_factory=BacktestConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    static: StaticConfig = field(default_factory=StaticConfig)
    models: ModelConfigs = field(default_factory=ModelConfigs)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    walk: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    tuned: dict[str, float] = field(default_factory=dict)  # the tuning's best values, applied (``with_tuned``)

    def with_tuned(self, best: dict[str, float]) -> BacktestParams:
        """These params with the tuning's best values set in the risk, decision and signal configs."""
        return dataclasses.replace(apply(self, best), tuned=dict(best)) if best else self

    @classmethod
    def from_params_file(cls) -> BacktestParams:
        return cls(
            BacktestConfig.from_params_file(),
            RiskConfig.from_params_file(),
            DecisionConfig.from_params_file(),
            StaticConfig.from_params_file(),
            ModelConfigs(
                SignalConfig.from_params(model_params("signal")[0]),
                RegimeConfig.from_params(model_params("regime")[0]),
                VolConfig.from_params(model_params("volatility")[0]),
            ),
            MemoryConfig.from_params_file(),
            WalkForwardConfig.from_params_file(),
            SimulatorConfig.from_params_file(),
            PaperConfig.from_params_file(),
            TuningConfig.from_params_file(),
        )

    def variant(self, name: str) -> Variant:
        return kernel_variant(name, self.risk, self.decision, self.static)


def law_cost_model(paper: PaperConfig) -> CostModel:
    """The expected cost (``z = 0``) of the simulator's own law: what the backtest's orders say they will cost."""

    def cost(orders: pl.DataFrame) -> np.ndarray:
        return impact_cost_bps(
            orders["size_over_adv"].to_numpy(),
            orders["sigma"].to_numpy(),
            orders["spread_bps"].to_numpy(),
            0.0,
            eta=paper.eta,
            delta=paper.delta,
            noise_scale=paper.noise_scale,
        )

    return cost


@dataclass
class BacktestRun:
    """One variant's stored result."""

    variant: str
    daily: pl.DataFrame
    signals: pl.DataFrame
    regimes: pl.DataFrame
    fills: pl.DataFrame
    info: dict[str, Any]

    def save(self, root: Path) -> Path:
        folder = root / self.variant
        for name in FRAMES:
            atomic_write_parquet(getattr(self, name), folder / f"{name}.parquet")
        atomic_write_bytes(json.dumps(self.info, indent=2, sort_keys=True, default=str).encode(), folder / "run.json")
        return folder

    @classmethod
    def load(cls, root: Path, variant: str) -> BacktestRun:
        folder = root / variant
        if not (folder / "run.json").exists():
            raise BacktestError(f"no backtest of variant {variant!r} under {root} (materialize backtest[{variant}])")
        frames = {name: pl.read_parquet(folder / f"{name}.parquet") for name in FRAMES}
        return cls(variant, info=json.loads((folder / "run.json").read_text(encoding="utf-8")), **frames)


def replay_window(history: History, config: BacktestConfig) -> tuple[dt.date, dt.date]:
    """The first and last replayed day (see the module docstring)."""
    widths = history.features.group_by("trade_date").len().sort("trade_date")
    if widths.height == 0:
        raise BacktestError("backtest: the warehouse has no features (run the features job first)")
    days = widths["trade_date"].to_list()
    # the days on which at least half of the universe has a features row (all days if there is none such)
    wide = widths.filter(2 * pl.col("len") >= history.features["symbol"].n_unique())["trade_date"].to_list() or days
    first = days.index(wide[0])
    start = config.start or (days[first + config.warmup_days] if len(days) > first + config.warmup_days else None)
    if start is None:
        raise BacktestError(
            f"backtest: {len(days) - first} days of features from {wide[0]} (the first day at least half the "
            f"universe trades) leave no day after backtest.run.warmup_days={config.warmup_days}"
        )
    end = config.end or wide[-1]
    if start > end:
        raise BacktestError(f"backtest: the window {start} .. {end} is empty")
    return start, end


def read_history(paths: Paths, source: str, config: BacktestConfig) -> History:
    """The history up to the window's end, narrowed to ``config.symbols`` (the market factor stays whole)."""
    history = History.read(paths, source, config.end or dt.date.max)
    if history.bars.height == 0:
        raise BacktestError(f"backtest: the lake has no bars of source {source!r} under {paths.bars(source)}")
    if not (config.symbols or config.exclude):
        return history
    present = set(history.features["symbol"].unique().to_list())
    for key, listed in (("symbols", config.symbols), ("exclude", config.exclude)):
        unknown = sorted(set(listed) - present)
        if unknown:
            raise BacktestError(f"backtest.run.{key}: not in the warehouse: {unknown[:10]}")
    keep = ~pl.col("symbol").is_in(list(config.exclude))
    if config.symbols:
        keep = keep & pl.col("symbol").is_in(list(config.symbols))
    return History(
        history.features.filter(keep),
        history.labels.filter(keep),
        history.returns.filter(keep),
        history.market,
        history.bars.filter(keep),
    )


@dataclass(frozen=True)
class Setup:
    """What every backtest asset starts from: the params, the history, the window and the universe's digest."""

    params: BacktestParams
    history: History
    start: dt.date
    end: dt.date
    universe: str


def setup(paths: Paths, source: str, params: BacktestParams | None = None) -> Setup:
    """Read the params (default: params.yaml) and the history of ``source``; find the window."""
    params = params or BacktestParams.from_params_file()
    history = read_history(paths, source, params.run)
    start, end = replay_window(history, params.run)
    return Setup(params, history, start, end, universe_digest(history))


def universe_digest(history: History) -> str:
    symbols = ",".join(sorted(history.features["symbol"].unique().to_list()))
    return hashlib.sha256(symbols.encode()).hexdigest()[:16]


def _with_next_returns(signals: pl.DataFrame, returns: pl.DataFrame) -> pl.DataFrame:
    """Each (symbol, day)'s realized next-day return beside the day's signal (for the permutation test)."""
    nxt = returns.sort("symbol", "trade_date").with_columns(next_ret=pl.col("ret_1d").shift(-1).over("symbol"))
    return signals.join(nxt.select("symbol", "trade_date", "next_ret"), on=["symbol", "trade_date"], how="left")


def _fills(result: SimResult) -> pl.DataFrame:
    return pl.DataFrame(result.fills, schema=FILL_SCHEMA)


def run_backtest(
    paths: Paths,
    source: str,
    name: str,
    params: BacktestParams | None = None,
    *,
    history: History | None = None,
    cache: FitCache | None = None,
) -> BacktestRun:
    """Backtest variant ``name`` (one of ``VARIANTS``) on the source's warehouse over the configured window."""
    if name not in VARIANTS:
        raise BacktestError(f"unknown backtest variant {name!r}; one of {list(VARIANTS)}")
    params = params or BacktestParams.from_params_file()
    history = history or read_history(paths, source, params.run)
    start, end = replay_window(history, params.run)
    started = time.perf_counter()
    info: dict[str, Any] = {
        "variant": name,
        "source": source,
        "window": [start.isoformat(), end.isoformat()],
        "universe": history.features["symbol"].n_unique(),
        "universe_digest": universe_digest(history),
        "starting_equity": params.risk.account_equity,
        "tuned": params.tuned,
    }
    if name == BUY_AND_HOLD:
        market = Market.from_bars(history.bars.filter(pl.col("date") <= end), params.paper)
        days = [d for d in market.dates if start <= d <= end]
        first = market.dates.index(days[0])
        result = buy_and_hold(market, params.risk.account_equity, first, params.paper, params.simulator)
        empty = pl.DataFrame(schema={"symbol": pl.String(), "p_up": pl.Float64(), "reference_price": pl.Float64(),
                                     "target_notional": pl.Float64(), "trade_date": pl.Date(),
                                     "next_ret": pl.Float64()})  # fmt: skip
        run = BacktestRun(name, result.daily(days), empty, pl.DataFrame({"trade_date": days}), _fills(result), info)
    else:
        oracle = None
        if name == ORACLE:
            truth_dir = paths.truth(source)
            if source != "synthetic" or not (truth_dir / "params.json").exists():
                raise BacktestError(
                    f"the oracle needs the synthetic market's ground truth; source {source!r} has none "
                    "(MEM_SOURCE=synthetic, then ingest)"
                )
            oracle = Oracle(load_truth(truth_dir))
        variant = params.variant(name)
        result = replay(
            history,
            start,
            end,
            law_cost_model(params.paper),
            variant=variant,
            configs=params.models,
            walk=params.walk,
            simulator=params.simulator,
            paper=params.paper,
            oracle=oracle,
            memory=params.memory,
            cache=cache,
        )
        info |= {
            "refits": [d.isoformat() for d in result.refits],
            "timings": result.timings,
            "orders": sum(o.height for o in result.orders.values()),
            "signal_fits": result.signal_fits,
            "variant_settings": _settings(variant),
        }
        run = BacktestRun(
            name,
            result.result.daily(result.days),
            _with_next_returns(result.signals, history.returns),
            result.regimes.join(history.market, on="trade_date", how="left"),
            _fills(result.result),
            info,
        )
    info["seconds"] = time.perf_counter() - started
    return run


def _settings(variant: Variant) -> dict[str, Any]:
    out = {k: v for k, v in dataclasses.asdict(variant).items() if k not in ("risk", "decision")}
    out["risk"] = variant.risk.to_params()
    return out
