"""Everything a trade decision for day ``t`` reads, gathered once, point in time, as one typed value.

Each model is the fit whose ``as_of`` is ``<= t`` (``artifact_as_of``), never a later one; the features are the
day's rows; regime probabilities and volatility forecasts are recomputed from that fit's parameters over returns
up to ``t`` (filtered, never smoothed); positions and the equity curve come from the ledger's fills up to ``t``.
Returns and forecasts are cut to the risk lookback window (``risk.scenarios.scenario_window``): the decision
reads nothing older. ``risk_limits`` gathers the inputs, stores them beside the day's risk assessment, and
``trade_decisions`` reads both back: the day is gathered once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from mem_pipeline.core.files import atomic_write_bytes, atomic_write_parquet, file_sha256
from mem_pipeline.core.paths import Paths
from mem_pipeline.decisions.portfolio import portfolio_state
from mem_pipeline.decisions.types import DecisionError
from mem_pipeline.decisions.version import frame_digest
from mem_pipeline.features.warehouse import read_relation, relation_columns
from mem_pipeline.ingest import lake
from mem_pipeline.models.artifacts import artifact_as_of
from mem_pipeline.models.regime import FittedRegime
from mem_pipeline.models.signal import FittedSignal
from mem_pipeline.models.slippage import FittedSlippage
from mem_pipeline.models.volatility import FittedVol
from mem_pipeline.risk.config import RiskConfig
from mem_pipeline.risk.scenarios import scenario_window

#: What sizing needs of a symbol's features row; a symbol without all of them gets no signal that day.
REQUIRED_FEATURES = ("close", "dollar_volume_20d", "spread_est", "rv_20d")
MODELS = ("signal", "regime", "volatility", "slippage")
#: The frames of a day's inputs, in the order the decision version lists their digests.
FRAMES = ("features", "signals", "returns", "vol_forecasts", "regime_probabilities", "positions", "equity_curve")
MANIFEST = "inputs.json"
#: ``(orders with the slippage FEATURES columns) -> expected cost in bps``, one per row; a polars frame
#: with ``expected_cost_bps`` (``FittedSlippage.predict``), a Series or an array.
CostModel = Callable[[pl.DataFrame], Any]


@dataclass(frozen=True, eq=False)
class DecisionInputs:
    """One day's inputs. Every dated frame stops at ``decision_date`` (``decide`` and ``assess`` refuse more)."""

    decision_date: dt.date
    features: pl.DataFrame  # one row per symbol: symbol, close, dollar_volume_20d, spread_est, rv_20d (, ...)
    signals: pl.DataFrame  # symbol, p_up (calibrated), optional payoff_ratio
    returns: pl.DataFrame  # symbol, trade_date, ret_1d
    vol_forecasts: pl.DataFrame | None  # symbol, trade_date, vol_forecast (None: plain historical CVaR)
    regime_probabilities: pl.DataFrame | Sequence[float]  # trade_date, p_regime_0.. (latest row used)
    positions: pl.DataFrame | None = None  # POSITION_SCHEMA (None: flat)
    equity_curve: pl.DataFrame | None = None  # trade_date, equity (None: account_equity, no drawdown)
    model_hashes: dict[str, str] = field(default_factory=dict)
    data_versions: dict[str, str] = field(default_factory=dict)
    lot_sizes: dict[str, float] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # symbols with a features row that lacks a required value (warm-up)

    @property
    def held(self) -> dict[str, float]:
        """Signed units per held symbol (flat ones left out)."""
        if self.positions is None or self.positions.height == 0:
            return {}
        frame = self.positions.select(pl.col("symbol").cast(pl.String), pl.col("quantity").cast(pl.Float64))
        return {s: q for s, q in frame.iter_rows() if q != 0}

    @property
    def universe(self) -> list[str]:
        """Symbols with a signal plus symbols held, sorted: the columns of the day's risk model."""
        return sorted(set(self.signals["symbol"].cast(pl.String).to_list()) | set(self.held))

    def digests(self) -> dict[str, Any]:
        """Content digest of every frame (the decision version hashes what was actually read)."""
        out: dict[str, Any] = {}
        for name in FRAMES:
            value = getattr(self, name)
            out[name] = (
                frame_digest(value) if value is None or isinstance(value, pl.DataFrame) else [float(v) for v in value]
            )
        return out

    def save(self, folder: Path) -> str:
        """Every frame as parquet plus ``inputs.json`` under ``folder``; returns the manifest's sha256."""
        stored: list[str] = []
        for name in FRAMES:
            value = getattr(self, name)
            if isinstance(value, pl.DataFrame):
                atomic_write_parquet(value, folder / f"{name}.parquet")
                stored.append(name)
        regime = self.regime_probabilities
        manifest = {
            "decision_date": self.decision_date.isoformat(),
            "frames": stored,
            "regime_probabilities": None if isinstance(regime, pl.DataFrame) else [float(v) for v in regime],
            "model_hashes": self.model_hashes,
            "data_versions": self.data_versions,
            "lot_sizes": self.lot_sizes,
            "skipped": list(self.skipped),
            "digests": self.digests(),
        }
        text = json.dumps(manifest, sort_keys=True, indent=1, allow_nan=False) + "\n"
        return atomic_write_bytes(text.encode(), folder / MANIFEST)

    @classmethod
    def load(cls, folder: Path) -> DecisionInputs:
        path = folder / MANIFEST
        if not path.exists():
            raise DecisionError(f"no stored decision inputs at {folder}: materialize risk_limits for the day first")
        manifest = json.loads(path.read_text())
        frames = {name: pl.read_parquet(folder / f"{name}.parquet") for name in manifest["frames"]}
        inputs = cls(
            decision_date=dt.date.fromisoformat(manifest["decision_date"]),
            features=frames["features"],
            signals=frames["signals"],
            returns=frames["returns"],
            vol_forecasts=frames.get("vol_forecasts"),
            regime_probabilities=frames.get("regime_probabilities", manifest["regime_probabilities"]),
            positions=frames.get("positions"),
            equity_curve=frames.get("equity_curve"),
            model_hashes=manifest["model_hashes"],
            data_versions=manifest["data_versions"],
            lot_sizes=manifest["lot_sizes"],
            skipped=tuple(manifest["skipped"]),
        )
        if inputs.digests() != manifest["digests"]:
            raise DecisionError(f"{folder}: the stored inputs do not match their digests (changed on disk?)")
        return inputs


def load_cost_model(paths: Paths, slippage_hash: str) -> CostModel:
    """The ``predict`` of the slippage artifact ``slippage_hash`` (the one a decision was versioned with)."""
    slippage = FittedSlippage.load(paths.models / "slippage" / slippage_hash)
    return lambda orders: slippage.predict(orders)["expected_cost_bps"]


class SignalModel(Protocol):
    """What a decision reads of a signal model: ``FittedSignal``, or a backtest variant's signal."""

    @property
    def payoff_ratio(self) -> float: ...

    def predict_signal(self, frame: pl.DataFrame) -> pl.Series: ...


@dataclass(frozen=True)
class DayModels:
    """The models a decision day uses (each fitted on data up to some day ``<= t``) and their artifact names."""

    signal: SignalModel
    regime: FittedRegime
    vol: FittedVol
    hashes: dict[str, str] = field(default_factory=dict)


def complete_features() -> pl.Expr:
    """True for a features row with every ``REQUIRED_FEATURES`` value present and finite."""
    return pl.all_horizontal(pl.col(c).is_not_null() & pl.col(c).is_finite() for c in REQUIRED_FEATURES)


def gather_inputs(
    day: dt.date,
    day_rows: pl.DataFrame,
    history: pl.DataFrame,
    regime_probabilities: pl.DataFrame,
    vol_forecasts: pl.DataFrame,
    models: DayModels,
    risk_config: RiskConfig,
    *,
    positions: pl.DataFrame | None = None,
    equity_curve: pl.DataFrame | None = None,
    data_versions: dict[str, str] | None = None,
) -> DecisionInputs:
    """The inputs of ``day`` from frames already read: the day's features rows, returns, filtered regime
    probabilities and volatility forecasts (all dated ``<= day``: later rows are a lookahead bug and raise in
    ``assess``), the models, positions and equity. Shared by the live path (``load_decision_inputs``) and the
    backtest's replay, so both decide on the same inputs."""
    complete = complete_features()
    features = day_rows.filter(complete)
    skipped = tuple(day_rows.filter(~complete)["symbol"].to_list())
    p_up = models.signal.predict_signal(features) if features.height else pl.Series("p_up", [], dtype=pl.Float64())
    signals = features.select("symbol").with_columns(
        p_up.alias("p_up"), payoff_ratio=pl.lit(models.signal.payoff_ratio)
    )
    returns, vol_window = scenario_window(history, vol_forecasts, risk_config)
    return DecisionInputs(
        decision_date=day,
        features=features,
        signals=signals,
        returns=returns,
        vol_forecasts=vol_window,
        regime_probabilities=regime_probabilities.sort("trade_date").tail(1),
        positions=positions,
        equity_curve=equity_curve,
        model_hashes=dict(models.hashes),
        data_versions=dict(data_versions or {}),
        skipped=skipped,
    )


def raw_file(paths: Paths, source: str, day: dt.date) -> Path:
    """The lake file that holds ``source``'s bars of ``day``."""
    return lake.partition_dir(paths.bars(source), day) / lake.PART


def day_features(paths: Paths, day: dt.date) -> pl.DataFrame:
    """The features rows of ``day`` as the warehouse holds them (every column of the mart)."""
    return read_relation(paths, "fct_features_daily", relation_columns(paths, "fct_features_daily"), day, since=day)


def raw_file_digest(paths: Paths, source: str, day: dt.date) -> str:
    """``sha256:<hex>`` of the day's raw lake file (``missing`` when the lake has no such file)."""
    path = raw_file(paths, source, day)
    return f"sha256:{file_sha256(path)}" if path.exists() else "missing"


def load_decision_inputs(
    paths: Paths, day: dt.date, risk_config: RiskConfig, source: str | None = None
) -> DecisionInputs:
    """Gather the inputs of the decision for ``day`` (raises ``MemError`` if a model has no fit up to ``day``).
    With ``source``, the sha256 of the day's raw lake file joins the data versions (``raw_bars``), so an order
    traces back to the bytes its features were computed from (``mem lineage``)."""
    located = {name: artifact_as_of(paths.models, name, day)[0] for name in MODELS}
    models = DayModels(
        FittedSignal.load(located["signal"]),
        FittedRegime.load(located["regime"]),
        FittedVol.load(located["volatility"]),
        {name: Path(path).name for name, path in located.items()},
    )
    day_rows = day_features(paths, day)
    if day_rows.height == 0:  # deciding on nothing would close every position
        raise DecisionError(
            f"no features for {day} in fct_features_daily: ingest the day and build its features first (new_day)"
        )
    history = read_relation(paths, "int_bars__returns", ["symbol", "trade_date", "ret_1d"], day)
    market = read_relation(paths, "int_market__daily", ["trade_date", "mkt_ret_1d"], day)
    regime_probabilities = models.regime.filtered_probabilities(market.rename({"mkt_ret_1d": "mkt_ret"}).drop_nulls())
    positions, equity_curve = portfolio_state(paths, day, risk_config.account_equity)
    return gather_inputs(
        day,
        day_rows,
        history,
        regime_probabilities,
        models.vol.forecast(history),
        models,
        risk_config,
        positions=positions,
        equity_curve=equity_curve,
        data_versions={
            "fct_features_daily": frame_digest(day_rows),
            "int_bars__returns": frame_digest(history),
            "int_market__daily": frame_digest(market),
            **({"raw_bars": raw_file_digest(paths, source, day)} if source else {}),
        },
    )
