"""The walk-forward replay of the decision kernel.

For every trading day of a range: the same ``decide_day`` the live ``trade_decisions`` asset calls, on inputs
gathered by the same ``gather_inputs`` (``decisions.inputs``), with positions and equity from the daily
simulator (the day's targets trade at the next open with the paper broker's cost law). The models are refitted
on a cadence (``backtest.walk_forward.refit``: monthly or quarterly, on the first trading day of each period) from
data up to the refit day only, as the live model assets fit "as of" a day.

Point in time: on day t the replay reads the features rows of t, returns and market returns up to t, the
regime's filtered probabilities and the volatility forecasts up to t (both forward recursions of the fitted
parameters, so computing them once per refit over the whole range gives, at each t, what returns up to t give),
and models fitted on data up to the last refit day <= t. Training labels are those known by the refit day
(``training_frame`` drops rows whose outcome lies after it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import polars as pl

from mem_pipeline.backtest.simulator import BacktestError, DailySimulator, Market, SimResult, SimulatorConfig
from mem_pipeline.backtest.variant_signals import FifoLogistic, Oracle, VariantSignal
from mem_pipeline.backtest.variants import MEM, Variant
from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.paths import Paths
from mem_pipeline.core.schemas import POSITION_SCHEMA
from mem_pipeline.decisions.decide import decide_day
from mem_pipeline.decisions.inputs import (
    CostModel,
    DayModels,
    DecisionInputs,
    SignalModel,
    complete_features,
    gather_inputs,
)
from mem_pipeline.execution.brokers.paper import PaperConfig
from mem_pipeline.features.warehouse import read_relation, relation_columns
from mem_pipeline.ingest import lake
from mem_pipeline.memory.decision_memory import DecisionMemory, MemoryConfig, record_direction_calls, row_weights
from mem_pipeline.models.regime import FittedRegime, RegimeConfig, fit_regime
from mem_pipeline.models.signal import FittedSignal, SignalConfig, fit_signal, training_frame
from mem_pipeline.models.signal_columns import KNOWN_DATE, LABEL, RETURN, TooLittleHistory, feature_columns
from mem_pipeline.models.volatility import FittedVol, VolConfig, fit_vol

CADENCES = ("monthly", "quarterly")


@dataclass(frozen=True)
class WalkForwardConfig(ParamsConfig):
    """``backtest.walk_forward`` in params.yaml."""

    SECTION: ClassVar[str] = "backtest.walk_forward"
    ERROR: ClassVar[type[Exception]] = BacktestError

    refit: str = "quarterly"

    def __post_init__(self) -> None:
        if self.refit not in CADENCES:
            raise BacktestError(f"backtest.walk_forward.refit must be one of {list(CADENCES)}, got {self.refit!r}")


@dataclass(frozen=True)
class ModelConfigs:
    """How each refit fits its models (the live model assets' configs)."""

    signal: SignalConfig = field(default_factory=SignalConfig)
    regime: RegimeConfig = field(default_factory=RegimeConfig)
    vol: VolConfig = field(default_factory=VolConfig)


@dataclass(frozen=True)
class History:
    """Everything a replay reads, read once: ``fct_features_daily``, ``fct_labels_daily``, ``int_bars__returns``,
    ``int_market__daily`` and the lake's bars, all up to the replay's last day."""

    features: pl.DataFrame
    labels: pl.DataFrame
    returns: pl.DataFrame
    market: pl.DataFrame  # trade_date, mkt_ret
    bars: pl.DataFrame

    @classmethod
    def read(cls, paths: Paths, source: str, end: dt.date) -> History:
        columns = relation_columns(paths, "fct_features_daily")
        market = read_relation(paths, "int_market__daily", ["trade_date", "mkt_ret_1d"], end)
        return cls(
            features=read_relation(paths, "fct_features_daily", columns, end),
            labels=read_relation(paths, "fct_labels_daily", ["symbol", "trade_date", LABEL, RETURN], end),
            returns=read_relation(paths, "int_bars__returns", ["symbol", "trade_date", "ret_1d"], end),
            market=market.rename({"mkt_ret_1d": "mkt_ret"}).drop_nulls(),
            bars=lake.read_bars(paths.bars(source), None, end),
        )

    def until(self, day: dt.date) -> History:
        """The same history cut at ``day`` (what a replay ending on ``day`` could have read)."""
        upto = pl.col("trade_date") <= day
        return History(
            self.features.filter(upto),
            self.labels.filter(upto),
            self.returns.filter(upto),
            self.market.filter(upto),
            self.bars.filter(pl.col("date") <= day),
        )


def refit_days(days: list[dt.date], cadence: str) -> set[dt.date]:
    """The first of ``days`` in each month (``monthly``) or calendar quarter (``quarterly``)."""
    if cadence not in CADENCES:
        raise BacktestError(f"refit cadence must be one of {list(CADENCES)}, got {cadence!r}")
    period = (lambda d: (d.year, d.month)) if cadence == "monthly" else (lambda d: (d.year, (d.month - 1) // 3))
    first: dict[tuple[int, int], dt.date] = {}
    for d in sorted(days):
        first.setdefault(period(d), d)
    return set(first.values())


@dataclass
class FitCache:
    """Fits by refit day that every variant of one backtest shares: the regime and volatility models, and the
    live signal model by its config (not the memory-weighted, static or oracle ones). Valid for one history
    and one regime and volatility config."""

    risk_models: dict[dt.date, tuple[FittedRegime, FittedVol]] = field(default_factory=dict)
    signals: dict[tuple[dt.date, SignalConfig], FittedSignal] = field(default_factory=dict)


def fit_day_models(
    history: History,
    as_of: dt.date,
    configs: ModelConfigs,
    previous: DayModels | None = None,
    variant: Variant | None = None,
    memory: DecisionMemory | None = None,
    oracle: Oracle | None = None,
    cache: FitCache | None = None,
) -> DayModels:
    """Signal, regime and volatility models fitted on data up to ``as_of`` only. The volatility fit starts from
    ``previous``'s (an earlier refit's, which saw no later data), as the live asset warm-starts.

    The signal is the variant's (``variant_signals``): the oracle, the static FIFO logistic model, or the live
    model read with the variant's options. With ``use_memory`` the fit weights its rows by ``memory`` (what
    earlier refits recorded, known by ``as_of``), then records its own out-of-sample calls there, as the live
    ``signal_model`` and ``decision_memory`` assets do. ``cache`` shares fits between the variants of one
    backtest (the same days and configs fit the same models)."""
    variant, cache = variant or Variant(MEM), cache if cache is not None else FitCache()
    upto = pl.col("trade_date") <= as_of
    features = history.features.filter(upto)
    if as_of not in cache.risk_models:
        regime = fit_regime(history.market.filter(upto), configs.regime)
        cache.risk_models[as_of] = (
            regime,
            fit_vol(history.returns.filter(upto), configs.vol, previous.vol if previous else None),
        )
    regime, vol = cache.risk_models[as_of]
    signal: SignalModel
    if variant.oracle:
        if oracle is None:
            raise BacktestError("the oracle variant needs the synthetic market's ground truth (source: synthetic)")
        signal = oracle
    else:
        frame = training_frame(features, history.labels.filter(upto))
        columns = feature_columns(features.columns)
        if variant.memory_rows is not None:
            signal = FifoLogistic.fit(frame, columns, variant.memory_rows, configs.signal.logistic_c)
        else:
            if variant.use_memory:
                weights = None
                if memory is not None and len(memory):
                    weights = row_weights(memory, frame, frame[KNOWN_DATE].max())
                fitted = _fit_signal(as_of, frame, columns, configs.signal, sample_weight=weights)
                if memory is not None and fitted.oos is not None:
                    record_direction_calls(memory, fitted.oos, f"p_{fitted.published}")
            else:
                key = (as_of, configs.signal)
                if key not in cache.signals:
                    cache.signals[key] = _fit_signal(as_of, frame, columns, configs.signal)
                fitted = cache.signals[key]
            signal = VariantSignal(fitted, variant.calibrated, variant.ensemble)
    tag = f"walk-forward fit as of {as_of}"
    return DayModels(signal, regime, vol, {"signal": tag, "regime": tag, "volatility": tag})


def _fit_signal(
    as_of: dt.date, frame: pl.DataFrame, columns: list[str], config: SignalConfig, **kwargs
) -> FittedSignal:
    """``fit_signal``, whose refusal for too little history names what the user can change."""
    try:
        return fit_signal(frame, columns, config, **kwargs)
    except TooLittleHistory as err:
        raise BacktestError(
            f"backtest: no signal model can be fitted on the data up to {as_of} ({err}): start the window later "
            "(backtest.run.warmup_days or start; the tuning fits before its validation_days) or widen the universe"
        ) from err


def _price_stale_holdings(inputs: DecisionInputs, features: pl.DataFrame, day: dt.date) -> DecisionInputs:
    """A held symbol whose features row of ``day`` is missing or incomplete (no bar that day, a quarantined bar)
    keeps its last complete row of an earlier day, for pricing only: without a row of the day it has no signal,
    so the kernel closes it (at the next open its bar allows). The live path raises instead: an operator
    reconciles a position that lost its data; a replay over years must go on."""
    have = set(inputs.features["symbol"].to_list())
    stale = [s for s in inputs.held if s not in have]
    if not stale:
        return inputs
    last = (
        features.filter(pl.col("symbol").is_in(stale) & (pl.col("trade_date") < day) & complete_features())
        .sort("trade_date")
        .group_by("symbol", maintain_order=True)
        .last()
        .select(inputs.features.columns)
    )
    return dataclasses.replace(inputs, features=pl.concat([inputs.features, last], how="vertical_relaxed"))


@dataclass
class Replay:
    """The replay's days, each day's orders, the refit days, the simulator's books and where the time went."""

    days: list[dt.date]
    orders: dict[dt.date, pl.DataFrame]
    refits: list[dt.date]
    result: SimResult
    timings: dict[str, float]
    signals: pl.DataFrame  # trade_date, symbol, p_up, reference_price, target_notional: each day's signal and book
    regimes: pl.DataFrame  # trade_date, p_regime_*: the regime probabilities each day decided with
    signal_fits: list[dict[str, str]] = field(default_factory=list)  # per refit: the selected, published model

    def equity(self) -> pl.DataFrame:
        """``trade_date, equity`` at each replayed day's close (after that day's fills)."""
        return self.result.daily(self.days).select("trade_date", "equity")


def replay(
    history: History,
    start: dt.date,
    end: dt.date,
    cost_model: CostModel,
    *,
    variant: Variant | None = None,
    configs: ModelConfigs | None = None,
    walk: WalkForwardConfig | None = None,
    simulator: SimulatorConfig | None = None,
    paper: PaperConfig | None = None,
    oracle: Oracle | None = None,
    memory: MemoryConfig | None = None,
    cache: FitCache | None = None,
) -> Replay:
    """Decide every trading day in ``[start, end]`` with the live kernel and trade the decisions in the simulator.

    ``variant`` (default: MEM as configured) sets the risk and decision configs and the signal; ``oracle`` is the
    synthetic market's truth, which the ``oracle`` variant needs."""
    variant, configs = variant or Variant(MEM), configs or ModelConfigs()
    risk_config, decision_config = variant.risk, variant.decision
    walk, paper = walk or WalkForwardConfig(), paper or PaperConfig()
    market = Market.from_bars(history.bars.filter(pl.col("date") <= end), paper)
    column = {s: j for j, s in enumerate(market.symbols)}
    index = {d: i for i, d in enumerate(market.dates)}
    feature_days = set(history.features["trade_date"].unique().to_list())
    days = [d for d in market.dates if start <= d <= end and d in feature_days]
    if not days:
        raise BacktestError(f"no trading day with features between {start} and {end}")
    refits = refit_days(days, walk.refit)
    sim = DailySimulator(market, risk_config.account_equity, paper, simulator)
    timings = {"fit_s": 0.0, "gather_s": 0.0, "decide_s": 0.0, "simulate_s": 0.0}
    models: DayModels | None = None
    journal = DecisionMemory(memory) if variant.use_memory else None
    regime_probabilities = vol_forecasts = pl.DataFrame()
    orders: dict[dt.date, pl.DataFrame] = {}
    signals: list[pl.DataFrame] = []
    regimes: list[dict[str, object]] = []
    fits: list[dict[str, str]] = []
    upto_end = pl.col("trade_date") <= end
    first = index[days[0]]
    for day in days:
        t0 = time.perf_counter()
        if models is None or day in refits:
            models = fit_day_models(history, day, configs, models, variant, journal, oracle, cache)
            fitted = getattr(models.signal, "fitted", None)  # what the walk-forward selection chose, per refit
            if fitted is not None:
                fits.append({"as_of": day.isoformat(), "selected": fitted.selected, "published": fitted.published})
            regime_probabilities = models.regime.filtered_probabilities(history.market.filter(upto_end))
            vol_forecasts = models.vol.forecast(history.returns.filter(upto_end))
        t1 = time.perf_counter()
        upto = pl.col("trade_date") <= day
        t = index[day]
        held = {s: float(q) for s, q in zip(market.symbols, sim.position, strict=True) if q != 0}
        positions = pl.DataFrame({"symbol": list(held), "quantity": list(held.values())}, schema=POSITION_SCHEMA)
        equity_curve = pl.DataFrame(
            {"trade_date": list(market.dates[first : t + 1]), "equity": sim.result.equity[first : t + 1].tolist()}
        )
        if variant.oracle and oracle is not None:
            oracle.at(day)
        inputs = gather_inputs(
            day,
            history.features.filter(pl.col("trade_date") == day),
            history.returns.filter(upto),
            oracle.regime_probabilities(day) if variant.oracle and oracle else regime_probabilities.filter(upto),
            vol_forecasts.filter(upto),
            models,
            risk_config,
            positions=positions,
            equity_curve=equity_curve,
        )
        inputs = _price_stale_holdings(inputs, history.features, day)
        t2 = time.perf_counter()
        decision = decide_day(inputs, cost_model, risk_config, decision_config)
        orders[day] = decision.orders
        signals.append(
            decision.targets.select("symbol", "p_up", "reference_price", "target_notional").with_columns(
                trade_date=pl.lit(day)
            )
        )
        probabilities = decision.report["regime_probabilities"]
        regimes.append({"trade_date": day, **{f"p_regime_{k}": float(p) for k, p in enumerate(probabilities)}})
        t3 = time.perf_counter()
        targets = sim.position.copy()
        for symbol, target in decision.targets.select("symbol", "target_position").iter_rows():
            if symbol in column and target is not None and np.isfinite(target):
                targets[column[symbol]] = target
        slices = np.ones(len(market.symbols))
        if variant.sliced:
            for symbol, n in decision.orders.select("symbol", "n_slices").iter_rows():
                slices[column[symbol]] = n
        sim.step(t, targets, slices)
        t4 = time.perf_counter()
        for key, seconds in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            timings[key] += seconds
    return Replay(days, orders, sorted(refits), sim.result, timings, pl.concat(signals), pl.DataFrame(regimes), fits)
