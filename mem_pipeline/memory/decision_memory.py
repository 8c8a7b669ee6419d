"""The decision memory: a journal of decisions and their outcomes, replayed by surprise.

The journal is one polars frame, a row per decision (``JOURNAL_SCHEMA``):

- ``decision_id`` (unique), ``symbol``, ``trade_date``, ``strategy``;
- ``expected``: the expected return (or probability-implied edge) at decision time;
- ``weight``: the position taken;
- ``horizon_days``: calendar days the realized return covers (default ``MemoryConfig.outcome_horizon_days``);
- ``realized``, ``known_date``: the realized return and the date it became known; null until
  ``record_outcomes`` sees it.

No lookahead: a row's outcome is *known at* ``as_of`` iff ``realized`` is set and
``known_date <= as_of``; ``record_outcomes`` refuses ``known_date < trade_date + horizon_days``
(an outcome cannot arrive before its decision, nor before its return is realized), so known rows
also satisfy ``trade_date + horizon_days <= as_of``. Only known rows are sampled or weighted.

Prioritized replay (Schaul et al., 2016, proportional variant), over the N rows known at ``as_of``:

- priority      p_i = |realized_i - expected_i| + epsilon
- probability   P(i) = p_i^alpha / sum_k p_k^alpha             (alpha = 0: uniform)
- IS weight     w_i = (N * P(i))^(-beta) / max_j (N * P(j))^(-beta)   (max over all N known rows,
                so a row's weight does not depend on which batch it was drawn in; beta = 1 fully
                corrects the bias: E_P[w f] = const * mean_uniform(f))

``sample_weights`` turns this into per-row weights for a refit (see its docstring).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.errors import MemError
from mem_pipeline.core.files import atomic_write_parquet

JOURNAL_SCHEMA: dict[str, Any] = {
    "decision_id": pl.String,
    "symbol": pl.String,
    "trade_date": pl.Date,
    "expected": pl.Float64,
    "realized": pl.Float64,
    "weight": pl.Float64,
    "strategy": pl.String,
    "horizon_days": pl.Int64,
    "known_date": pl.Date,
}
DECISION_REQUIRED = ("decision_id", "symbol", "trade_date", "expected", "weight", "strategy")
OUTCOME_REQUIRED = ("decision_id", "realized")
VIEW_NAMES = ("short", "medium", "long")


class DecisionMemoryError(MemError, ValueError):
    """Bad memory configuration or input (names the key or column, the rule broken and the decisions)."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryConfig(ParamsConfig):
    """Replay and view settings (``memory`` in params shape)."""

    SECTION: ClassVar[str] = "models.memory"
    ERROR: ClassVar[type[Exception]] = DecisionMemoryError

    alpha: float = 0.6  # priority exponent: 0 = uniform replay, 1 = fully proportional to surprise
    beta: float = 0.4  # importance-sampling exponent: 0 = no correction, 1 = full correction
    epsilon: float = 1e-3  # priority floor: a row with zero surprise can still be replayed
    short_horizon: int = 5  # trading dates in the short view
    medium_horizon: int = 21
    long_horizon: int = 126
    outcome_horizon_days: int = 1  # default calendar days a decision's realized return covers
    seed: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.alpha) and self.alpha >= 0):
            _fail("alpha", f"must be a finite number >= 0, got {self.alpha}")
        if not 0 <= self.beta <= 1:
            _fail("beta", f"must be in [0, 1], got {self.beta}")
        if not (np.isfinite(self.epsilon) and self.epsilon > 0):
            _fail("epsilon", f"must be a positive number, got {self.epsilon}")
        if not 0 < self.short_horizon <= self.medium_horizon <= self.long_horizon:
            _fail(
                "short_horizon",
                "horizons must satisfy 0 < short <= medium <= long, got "
                f"{self.short_horizon}, {self.medium_horizon}, {self.long_horizon}",
            )
        if self.outcome_horizon_days < 0:
            _fail("outcome_horizon_days", f"must be >= 0, got {self.outcome_horizon_days}")

    def to_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def horizon(self, name: str | int) -> int:
        """``"short"``/``"medium"``/``"long"`` or a positive number of trading dates."""
        if isinstance(name, str):
            if name not in VIEW_NAMES:
                raise DecisionMemoryError(
                    f"memory.view: horizon must be one of {list(VIEW_NAMES)} or an int, got {name!r}"
                )
            return int(getattr(self, f"{name}_horizon"))
        if isinstance(name, bool) or int(name) != name or name < 1:
            raise DecisionMemoryError(f"memory.view: horizon must be a positive int, got {name!r}")
        return int(name)


def _fail(key: str, detail: str) -> None:
    raise DecisionMemoryError(f"memory.{key}: {detail}")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplaySample:
    """``n`` draws with replacement: journal row indices, their P(i) and normalized IS weights."""

    indices: np.ndarray  # int64 row positions in ``DecisionMemory.journal``
    probabilities: np.ndarray  # P(i) of each drawn row
    weights: np.ndarray  # w_i = (N P(i))^-beta / max_j w_j, in (0, 1]
    decision_ids: tuple[str, ...]
    eligible: int  # N: rows known at as_of


@dataclass(frozen=True)
class MemoryView:
    """Rows traded within the last ``horizon`` trading dates up to ``as_of``, with summary stats.

    Outcomes not known at ``as_of`` are blanked (``realized``/``known_date`` null) in ``rows``.
    ``mean_surprise`` = mean |realized - expected| and ``hit_rate`` = share with
    sign(realized) == sign(expected), both over rows known at ``as_of`` (None when there are none;
    ``hit_rate`` skips rows with expected == 0).
    """

    horizon: int
    as_of: dt.date
    rows: pl.DataFrame
    count: int
    known: int
    mean_surprise: float | None
    hit_rate: float | None


# --------------------------------------------------------------------------------------------
# The memory
# --------------------------------------------------------------------------------------------


class DecisionMemory:
    """An append-only journal of decisions and outcomes with prioritized replay.

    Sampling draws from a ``numpy.random.Generator`` seeded with ``config.seed`` at construction
    (and at ``load``): two memories built the same way and asked the same questions draw the same
    samples. Pass ``rng`` to ``sample`` to use another stream.
    """

    def __init__(self, config: MemoryConfig | None = None, journal: pl.DataFrame | None = None) -> None:
        self.config = config or MemoryConfig()
        self._journal = pl.DataFrame(schema=JOURNAL_SCHEMA) if journal is None else _check_journal(journal)
        self._rng = np.random.default_rng(self.config.seed)

    @property
    def journal(self) -> pl.DataFrame:
        return self._journal

    def __len__(self) -> int:
        return self._journal.height

    # ---- writing ---------------------------------------------------------------------------

    def record(self, decisions: pl.DataFrame) -> None:
        """Append decisions (``DECISION_REQUIRED`` columns, optional ``horizon_days``).

        Raises ``DecisionMemoryError`` on missing columns, nulls, non-finite expected/weight,
        negative horizons or a decision_id already in the batch or in the journal.
        """
        where = "record"
        _require(decisions, DECISION_REQUIRED, where)
        frame = decisions
        if "horizon_days" not in frame.columns:
            frame = frame.with_columns(horizon_days=pl.lit(self.config.outcome_horizon_days, dtype=pl.Int64))
        try:
            frame = frame.select(
                pl.col("decision_id").cast(pl.String),
                pl.col("symbol").cast(pl.String),
                pl.col("trade_date").cast(pl.Date),
                pl.col("expected").cast(pl.Float64),
                pl.lit(None, dtype=pl.Float64).alias("realized"),
                pl.col("weight").cast(pl.Float64),
                pl.col("strategy").cast(pl.String),
                pl.col("horizon_days").cast(pl.Int64),
                pl.lit(None, dtype=pl.Date).alias("known_date"),
            )
        except pl.exceptions.PolarsError as exc:
            raise DecisionMemoryError(f"{where}: columns cannot be read with the journal's types ({exc})") from exc
        for name in (*DECISION_REQUIRED, "horizon_days"):
            _no_nulls(frame, name, where)
        _finite(frame, "expected", where)
        _finite(frame, "weight", where)
        negative = frame.filter(pl.col("horizon_days") < 0)["decision_id"].to_list()
        if negative:
            raise DecisionMemoryError(f"{where}: horizon_days must be >= 0 (decisions {_ids(negative)})")
        dupes = frame.filter(pl.col("decision_id").is_duplicated())["decision_id"].unique(maintain_order=True).to_list()
        if dupes:
            raise DecisionMemoryError(f"{where}: decision_id repeated in the batch ({_ids(dupes)})")
        again = frame.filter(pl.col("decision_id").is_in(self._journal["decision_id"].implode()))[
            "decision_id"
        ].to_list()
        if again:
            raise DecisionMemoryError(f"{where}: decision_id already recorded ({_ids(again)})")
        self._journal = pl.concat([self._journal, frame], how="vertical")

    def record_outcomes(self, outcomes: pl.DataFrame) -> None:
        """Fill ``realized`` (and ``known_date``) by ``decision_id``.

        ``known_date`` defaults to ``trade_date + horizon_days``. All-or-nothing: raises
        ``DecisionMemoryError`` and changes nothing when a decision_id is unknown or repeated,
        realized is null or non-finite, ``known_date`` is before the decision's ``trade_date``
        (an outcome never arrives before its decision) or before ``trade_date + horizon_days``,
        or an outcome already recorded would change. Recording the same outcome twice is a no-op.
        """
        where = "record_outcomes"
        _require(outcomes, OUTCOME_REQUIRED, where)
        cols = [pl.col("decision_id").cast(pl.String), pl.col("realized").cast(pl.Float64)]
        cols.append(
            pl.col("known_date").cast(pl.Date).alias("known_date_new")
            if "known_date" in outcomes.columns
            else pl.lit(None, dtype=pl.Date).alias("known_date_new")
        )
        try:
            frame = outcomes.select(cols).rename({"realized": "realized_new"})
        except pl.exceptions.PolarsError as exc:
            raise DecisionMemoryError(f"{where}: columns cannot be read with the journal's types ({exc})") from exc
        _no_nulls(frame, "decision_id", where)
        _no_nulls(frame, "realized_new", where, label="realized")
        _finite(frame, "realized_new", where, label="realized")
        dupes = frame.filter(pl.col("decision_id").is_duplicated())["decision_id"].unique(maintain_order=True).to_list()
        if dupes:
            raise DecisionMemoryError(f"{where}: decision_id repeated in the batch ({_ids(dupes)})")
        unknown = frame.filter(~pl.col("decision_id").is_in(self._journal["decision_id"].implode()))["decision_id"]
        if unknown.len():
            raise DecisionMemoryError(f"{where}: no recorded decision for decision_id {_ids(unknown.to_list())}")

        due = pl.col("trade_date") + pl.duration(days=pl.col("horizon_days"))
        joined = frame.join(self._journal, on="decision_id", how="left").with_columns(
            known_date_new=pl.coalesce("known_date_new", due), due=due
        )
        early = joined.filter(pl.col("known_date_new") < pl.col("trade_date"))
        if early.height:
            raise DecisionMemoryError(
                f"{where}: known_date before the decision's trade_date (decisions "
                f"{_ids(early['decision_id'].to_list())}): an outcome never arrives before its decision"
            )
        unrealized = joined.filter(pl.col("known_date_new") < pl.col("due"))
        if unrealized.height:
            raise DecisionMemoryError(
                f"{where}: known_date before trade_date + horizon_days (decisions "
                f"{_ids(unrealized['decision_id'].to_list())}): the return was not realized yet"
            )
        changed = joined.filter(
            pl.col("realized").is_not_null()
            & ((pl.col("realized") != pl.col("realized_new")) | (pl.col("known_date") != pl.col("known_date_new")))
        )
        if changed.height:
            raise DecisionMemoryError(
                f"{where}: outcome already recorded with other values (decisions "
                f"{_ids(changed['decision_id'].to_list())}); the journal is append-only"
            )
        updates = joined.select("decision_id", "realized_new", "known_date_new")
        self._journal = (
            self._journal.join(updates, on="decision_id", how="left", maintain_order="left")
            .with_columns(
                realized=pl.coalesce("realized_new", "realized"),
                known_date=pl.coalesce("known_date_new", "known_date"),
            )
            .select(list(JOURNAL_SCHEMA))
        )

    # ---- persistence -----------------------------------------------------------------------

    def save(self, path: Path | str) -> str:
        """Write the journal to ``path`` as parquet, atomically; return the file's sha256."""
        return atomic_write_parquet(self._journal, Path(path))

    @classmethod
    def load(cls, path: Path | str, config: MemoryConfig | None = None) -> DecisionMemory:
        """The memory saved at ``path`` (the config is not stored: pass it; the rng restarts from its seed)."""
        path = Path(path)
        if not path.is_file():
            raise DecisionMemoryError(f"{path}: no saved decision memory")
        return cls(config, pl.read_parquet(path))

    # ---- replay ----------------------------------------------------------------------------

    def known_mask(self, as_of: dt.date) -> np.ndarray:
        """Boolean per journal row: outcome known at ``as_of`` (no lookahead)."""
        j = self._journal
        if not j.height:
            return np.zeros(0, dtype=bool)
        mask = j.select(
            (
                pl.col("realized").is_not_null()
                & pl.col("known_date").is_not_null()
                & (pl.col("known_date") <= as_of)
                & ((pl.col("trade_date") + pl.duration(days=pl.col("horizon_days"))) <= as_of)
            ).fill_null(False)
        ).to_series()
        return mask.to_numpy().astype(bool)

    def priorities(self, as_of: dt.date | None = None) -> np.ndarray:
        """p_i = |realized_i - expected_i| + epsilon per journal row; NaN where the outcome is unknown
        (at all, or at ``as_of`` when given)."""
        j = self._journal
        p = (
            np.abs(j["realized"].to_numpy().astype(float) - j["expected"].to_numpy().astype(float))
            + self.config.epsilon
        )
        if as_of is not None:
            p = np.where(self.known_mask(as_of), p, np.nan)
        return p

    def probabilities(self, as_of: dt.date) -> np.ndarray:
        """P(i) = p_i^alpha / sum_k p_k^alpha over rows known at ``as_of``; 0 elsewhere (sums to 1)."""
        mask = self.known_mask(as_of)
        probs = np.zeros(len(mask))
        if mask.any():
            scaled = self.priorities()[mask] ** self.config.alpha
            probs[mask] = scaled / scaled.sum()
        return probs

    def is_weights(self, as_of: dt.date) -> np.ndarray:
        """w_i = (N P(i))^-beta / max_j (N P(j))^-beta over the N rows known at ``as_of``; 0 elsewhere."""
        probs = self.probabilities(as_of)
        mask = probs > 0
        weights = np.zeros(len(probs))
        if mask.any():
            raw = (mask.sum() * probs[mask]) ** (-self.config.beta)
            weights[mask] = raw / raw.max()
        return weights

    def sample(self, n: int, as_of: dt.date, rng: np.random.Generator | None = None) -> ReplaySample:
        """Draw ``n`` rows with replacement from those known at ``as_of``, with probability P(i)."""
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise DecisionMemoryError(f"sample: n must be a positive int, got {n!r}")
        probs = self.probabilities(as_of)
        eligible = np.flatnonzero(probs > 0)
        if not eligible.size:
            raise DecisionMemoryError(f"sample: no decision has a known outcome at {as_of} ({len(self)} recorded)")
        generator = self._rng if rng is None else rng
        local = probs[eligible]
        local = local / local.sum()  # exact normalization for Generator.choice
        indices = eligible[generator.choice(eligible.size, size=int(n), replace=True, p=local)].astype(np.int64)
        weights = self.is_weights(as_of)
        ids = self._journal["decision_id"].to_list()
        return ReplaySample(
            indices=indices,
            probabilities=probs[indices],
            weights=weights[indices],
            decision_ids=tuple(ids[i] for i in indices),
            eligible=int(eligible.size),
        )

    def sample_weights(self, as_of: dt.date) -> np.ndarray:
        """Per-journal-row ``sample_weight`` for a refit on the rows known at ``as_of``.

        A refit on n prioritized draws with IS weights sees row i on average n P(i) times, each with
        weight w_i, so its total weight is n P(i) w_i ∝ P(i) (N P(i))^-beta ∝ P(i)^(1 - beta).
        Normalized to mean 1 over the N known rows:

            s_i = N * P(i)^(1-beta) / sum_k P(k)^(1-beta)     (known rows),   s_i = 0   (others)

        beta = 1 gives uniform weights (1 each); beta = 0 gives N P(i). Deterministic (no draws).
        """
        probs = self.probabilities(as_of)
        mask = probs > 0
        out = np.zeros(len(probs))
        if mask.any():
            total = probs[mask] ** (1.0 - self.config.beta)
            out[mask] = mask.sum() * total / total.sum()
        return out

    # ---- views -----------------------------------------------------------------------------

    def view(self, horizon: str | int, as_of: dt.date) -> MemoryView:
        """Rows whose trade_date is among the last ``horizon`` distinct trade dates <= ``as_of``.

        ``horizon``: ``"short"``, ``"medium"``, ``"long"`` (config horizons) or a number of trading
        dates (the journal's distinct trade dates). See ``MemoryView`` for the stats.
        """
        h = self.config.horizon(horizon)
        known = pl.Series("known", self.known_mask(as_of), dtype=pl.Boolean)
        j = self._journal.with_columns(known)
        dates = j.filter(pl.col("trade_date") <= as_of)["trade_date"].unique().sort()
        window = dates.tail(h)
        rows = j.filter(pl.col("trade_date").is_in(window.implode())).with_columns(
            realized=pl.when("known").then("realized"),
            known_date=pl.when("known").then("known_date"),
        )
        seen = rows.filter("known")
        mean_surprise = hit_rate = None
        if seen.height:
            mean_surprise = float((seen["realized"] - seen["expected"]).abs().mean())  # type: ignore[arg-type]
            directional = seen.filter(pl.col("expected") != 0)
            if directional.height:
                hits = (directional["realized"].sign() == directional["expected"].sign()).cast(pl.Float64)
                hit_rate = float(hits.mean())  # type: ignore[arg-type]
        return MemoryView(
            horizon=h,
            as_of=as_of,
            rows=rows.drop("known"),
            count=rows.height,
            known=seen.height,
            mean_surprise=mean_surprise,
            hit_rate=hit_rate,
        )

    def views(self, as_of: dt.date) -> dict[str, MemoryView]:
        """The short, medium and long views at ``as_of``."""
        return {name: self.view(name, as_of) for name in VIEW_NAMES}


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _ids(ids: list[Any], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f", … ({len(ids)} in all)" if len(ids) > limit else "")


def _require(frame: pl.DataFrame, columns: tuple[str, ...], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DecisionMemoryError(f"{where}: missing columns {missing} (has {frame.columns})")


def _no_nulls(frame: pl.DataFrame, column: str, where: str, label: str | None = None) -> None:
    count = frame[column].null_count()
    if count:
        raise DecisionMemoryError(f"{where}: column {label or column!r} has {count} nulls")


def _finite(frame: pl.DataFrame, column: str, where: str, label: str | None = None) -> None:
    bad = int((~np.isfinite(frame[column].to_numpy().astype(float))).sum())
    if bad:
        raise DecisionMemoryError(f"{where}: column {label or column!r} has {bad} non-finite values")


def _check_journal(journal: pl.DataFrame) -> pl.DataFrame:
    if dict(journal.schema) != JOURNAL_SCHEMA:
        raise DecisionMemoryError(f"journal: schema {dict(journal.schema)} is not the journal schema {JOURNAL_SCHEMA}")
    if journal["decision_id"].is_duplicated().any():
        raise DecisionMemoryError("journal: decision_id is not unique")
    return journal


# --------------------------------------------------------------------------------------------
# Feeding the signal model
# --------------------------------------------------------------------------------------------


def direction_decisions(oos: pl.DataFrame, p_column: str, strategy: str = "ml") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Journal rows for direction calls and their outcomes, in probability units.

    A call ``p = P(up)`` on ``(symbol, trade_date)`` is recorded with ``expected = p - 0.5`` (the
    probability-implied edge) and ``weight = sign(p - 0.5)``; its outcome is ``realized = up - 0.5``, known
    at ``known_date``. The surprise ``|realized - expected| = |up - p|`` is then the call's error.
    Returns ``(decisions, outcomes)`` for ``record`` and ``record_outcomes``.
    """
    _require(oos, ("symbol", "trade_date", p_column, "up_1d", "known_date"), "direction_decisions")
    decision_id = pl.concat_str(pl.lit(f"{strategy}:"), "symbol", pl.lit(":"), pl.col("trade_date").cast(pl.String))
    decisions = oos.select(
        decision_id.alias("decision_id"),
        "symbol",
        "trade_date",
        (pl.col(p_column) - 0.5).alias("expected"),
        (pl.col(p_column) - 0.5).sign().alias("weight"),
        pl.lit(strategy).alias("strategy"),
        (pl.col("known_date") - pl.col("trade_date")).dt.total_days().cast(pl.Int64).alias("horizon_days"),
    )
    outcomes = oos.select(
        decision_id.alias("decision_id"),
        (pl.col("up_1d").cast(pl.Float64) - 0.5).alias("realized"),
        "known_date",
    )
    return decisions, outcomes


def row_weights(memory: DecisionMemory, rows: pl.DataFrame, as_of: dt.date, strategy: str = "ml") -> np.ndarray:
    """A training weight per ``(symbol, trade_date)`` row: the memory's ``sample_weights`` at ``as_of`` for
    rows it holds a known ``strategy`` decision on, 1 (the weights' mean) for the rows it does not."""
    journal = memory.journal.with_columns(weight_=pl.Series(memory.sample_weights(as_of)))
    known = journal.filter((pl.col("strategy") == strategy) & (pl.col("weight_") > 0)).select(
        "symbol", "trade_date", "weight_"
    )
    joined = (
        rows.select("symbol", "trade_date").with_row_index("row_").join(known, on=["symbol", "trade_date"], how="left")
    )
    return joined.sort("row_")["weight_"].fill_null(1.0).to_numpy()


def record_direction_calls(memory: DecisionMemory, oos: pl.DataFrame, p_column: str, strategy: str = "ml") -> int:
    """Record a signal fit's out-of-sample calls and their outcomes (``direction_decisions``), skipping calls
    the journal already holds (consecutive refits predict overlapping days). Returns the rows added."""
    decisions, outcomes = direction_decisions(oos, p_column, strategy)
    fresh = ~decisions["decision_id"].is_in(memory.journal["decision_id"].implode())
    decisions, outcomes = decisions.filter(fresh), outcomes.filter(fresh)
    memory.record(decisions)
    memory.record_outcomes(outcomes)
    return decisions.height
