"""fct_features_daily is point in time: a value at t reads bars <= t only, and only as far back as its window.

* Lookahead: rebuilding on a lake truncated after t (only partitions dated <= t copied into a fresh data
  folder) reproduces the full build's rows up to t, with nulls in exactly the same places.
* Warm-up (a "recursive analysis"): rebuilding on a lake without its first K trading days gives the full
  build's values wherever it has one, and has one exactly where the symbol's shortened history holds the
  rows the feature needs (``NEED``). Ranks are cross-sectional: they must equal the percent rank among the
  symbols ranked that day in the shorter build.
* The features' lineage never includes the labels mart, nor any window reading following rows.

Tolerance: the lookahead half is bit-for-bit (rows after t change nothing: each symbol's windows are
recomputed from their own rows at places fixed by its history, ``obs``, not by where the lake ends). The
warm-up half is not: a lake without its first days numbers each symbol's rows from another first row, so the
windows are recomputed at other rows and their running sums round differently in the last bits. Values are
compared to 1e-12, relative for dollar_volume_20d (values ~1e8); a real leak or a longer dependence moves a
value by many orders of magnitude more. Nulls must coincide exactly.

All builds use the hand-made ``files`` lake (late starter, early leaver, missing days, zero volume, flat
stretches). The full build is shared with test_features_reference (one build per session, see harness).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mem_pipeline.core.paths import DBT_PROJECT_DIR
from mem_pipeline.features import day_ranks, rolling, window_kernel
from mem_pipeline.features.dbt_cli import dbt
from tests.dbt.harness import (
    FILES_DAYS,
    FILES_START,
    assert_same_values,
    build_files,
    business_days,
    copy_partitions,
    files_bars,
    load,
    shared_build,
    write_lake,
)
from tests.dbt.reference_features import FEATURE_COLUMNS, KEY, RANKED, percent_rank

SOURCE = "files"
DAYS = business_days(FILES_START, FILES_DAYS)
# Truncation dates: early (short windows warm, 60-row ones not yet), middle (zero-volume day, flat
# stretches, LATE started, GAP's gap ahead), and the day before the last one (everything after t is a
# single day, the tightest lookahead: a lead(…, 1) or a window frame running one row ahead would show).
CUTOFFS = {"early": DAYS[35], "middle": DAYS[150], "last": DAYS[-2]}
WARMUP_DROP = 40  # trading days removed from the start of the lake

# Rows of a symbol's own history, the current row included, that a feature needs (on a lake without
# bid/ask: spread_est is the Corwin-Schultz mean, whose first estimate needs a previous bar). Features
# reading the market need no more: any date after the lake's first is a market day, so a symbol's 6th row
# always has 5 market days behind it.
NEED = {
    "close": 1,
    "ret_1d": 2,
    "ret_5d": 6,
    "ret_20d": 21,
    "ret_60d": 61,
    "rv_5d": 6,
    "rv_20d": 21,
    "rv_60d": 61,
    "parkinson_20d": 20,
    "garman_klass_20d": 20,
    "momentum_60_5": 61,
    "reversal_5d": 6,
    "macd": 26,
    "price_z_20d": 20,
    "volume_z_20d": 20,
    "dollar_volume_20d": 20,
    "amihud_20d": 21,
    "quoted_spread_20d": 20,
    "cs_spread_20d": 21,
    "beta_60d": 61,
    "corr_60d": 61,
    "drawdown_60d": 60,
    "rsi_14": 15,
    "macd_signal_9": 34,  # 9 MACD values, the first at row 26
    "spread_est": 21,
}
NEED |= {f"rank_{column}": NEED[column] for column in RANKED}
ABS_TOL = 1e-12
REL_TOL = {"dollar_volume_20d": 1e-12}
VALUE_COLUMNS = tuple(c for c in FEATURE_COLUMNS if not c.startswith("rank_"))
RANK_COLUMNS = tuple(f"rank_{c}" for c in RANKED)


def _build_subset(factory: pytest.TempPathFactory, key: str, keep: Callable[[dt.date], bool]) -> Path:
    """Features built on the lake's partitions that pass ``keep`` (copied from a freshly written full lake)."""

    def prepare(data_dir: Path) -> None:
        staging = data_dir / "staging"
        write_lake(staging, SOURCE, files_bars())
        copy_partitions(staging, data_dir, SOURCE, keep)

    return shared_build(factory, key, SOURCE, prepare, "run", "--select", "+fct_features_daily")


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    return load(build_files(tmp_path_factory), "fct_features_daily")


def test_NEED_covers_every_feature() -> None:
    assert set(NEED) == set(FEATURE_COLUMNS)


# --------------------------------------------------------------------------------------------
# Lookahead
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cutoff", list(CUTOFFS), ids=list(CUTOFFS))
def test_no_lookahead_rows_up_to_t_ignore_later_bars(cutoff: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    t = CUTOFFS[cutoff]
    truncated = load(_build_subset(tmp_path_factory, f"files-upto-{t}", lambda day: day <= t), "fct_features_daily")
    full = load(build_files(tmp_path_factory), "fct_features_daily")  # after ours: another worker may be building it
    assert truncated["trade_date"].max() == t
    expected = full.filter(pl.col("trade_date") <= t)
    at_t = expected.filter(pl.col("trade_date") == t)
    assert at_t.height >= 8  # the symbols trading at t
    # The rows at t first (the clearest failure message), then every row up to t; then the same bits: later rows
    # change nothing (each window is recomputed at rows fixed by the symbol's history, obs, not by its end).
    tolerance = {"abs_tol": ABS_TOL, "rel_tol": REL_TOL, "what": ("truncated", "full")}
    assert_same_values(truncated.filter(pl.col("trade_date") == t), at_t, FEATURE_COLUMNS, **tolerance)
    assert_same_values(truncated, expected, FEATURE_COLUMNS, **tolerance)
    assert truncated.sort(KEY).equals(expected.sort(KEY))


# --------------------------------------------------------------------------------------------
# Warm-up: no feature depends on history before its window
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shortened(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    first = DAYS[WARMUP_DROP]
    return load(_build_subset(tmp_path_factory, f"files-from-{first}", lambda day: day >= first), "fct_features_daily")


def test_warmup_values_do_not_depend_on_older_history(shortened: pl.DataFrame, full: pl.DataFrame) -> None:
    first = DAYS[WARMUP_DROP]
    assert shortened["trade_date"].min() == first
    same_days = full.filter(pl.col("trade_date") >= first)
    assert shortened.select(KEY).equals(same_days.select(KEY))
    joined = same_days.join(shortened, on=KEY, suffix="__short").sort(KEY)
    joined = joined.with_columns(obs=pl.int_range(1, pl.len() + 1).over("symbol"))  # rows in the short lake
    problems = []
    for column in VALUE_COLUMNS:
        short, long_ = pl.col(f"{column}__short"), pl.col(column)
        # Values: where the short build has one, it is the full build's.
        tol = REL_TOL[column] * long_.abs() if column in REL_TOL else pl.lit(ABS_TOL)
        differs = joined.filter(short.is_not_null() & (long_.is_null() | ((short - long_).abs() > tol)))
        # Nulls: exactly where the short history lacks rows or the full build is null too (zero volume, ...).
        expected_present = long_.is_not_null() & (pl.col("obs") >= NEED[column])
        misplaced = joined.filter(short.is_not_null() != expected_present)
        for kind, rows in (("value", differs), ("null", misplaced)):
            if rows.height:
                r = rows.row(0, named=True)
                problems.append(
                    f"{column} ({kind}, {rows.height} rows) first at {r['trade_date']} {r['symbol']} "
                    f"(row {r['obs']} of the short history, needs {NEED[column]}): "
                    f"short={r[f'{column}__short']!r} full={r[column]!r}"
                )
    assert not problems, "\n".join(problems)
    assert joined.filter(pl.col("beta_60d__short").is_not_null()).height > 500  # long windows were compared


def test_warmup_ranks_are_the_cross_section_of_that_day(shortened: pl.DataFrame, full: pl.DataFrame) -> None:
    """A rank reads other symbols' values that day, so a symbol whose window is still warming in the short
    build drops out of everyone's cross-section: the rank must be the percent rank among the symbols the
    short build ranks that day, of the (history-independent) full-build values."""
    first = DAYS[WARMUP_DROP]
    joined = full.filter(pl.col("trade_date") >= first).join(shortened, on=KEY, suffix="__short")
    expected_parts = []
    for (_,), day in joined.group_by(["trade_date"], maintain_order=True):
        ranks = {}
        for column in RANKED:
            values = day[column].to_numpy().astype(np.float64)
            values[day[f"{column}__short"].is_null().to_numpy()] = np.nan
            ranks[f"rank_{column}"] = pl.Series(percent_rank(values)).fill_nan(None)
        expected_parts.append(day.select(KEY).with_columns(**ranks))
    assert_same_values(shortened, pl.concat(expected_parts), RANK_COLUMNS, what=("short", "cross-section"))


# --------------------------------------------------------------------------------------------
# Lineage: labels (which read the future) never feed the features
# --------------------------------------------------------------------------------------------

MODELS = DBT_PROJECT_DIR / "models"
# lead(...) or a window frame ending after the current row ("1 following", "unbounded following"); in polars a
# negative shift or a centred rolling window; in the numba kernel a row after the current one (x[i + k]).
FUTURE_READS = r"\blead\s*\(|\b(?:unbounded|\d+)\s+following\b|shift\(\s*-|center\s*=\s*True|\[\s*i\s*\+"
# The code the Python feature model runs.
FEATURE_CODE = (Path(rolling.__file__), Path(window_kernel.__file__), Path(day_ranks.__file__))


def _model_code(name: str) -> str:
    """A model's code; a Python model's includes the modules it runs."""
    (path,) = [p for p in MODELS.rglob(f"{name}.*") if p.suffix in (".sql", ".py")]
    code = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        code += "".join(module.read_text(encoding="utf-8") for module in FEATURE_CODE)
    return code


def test_features_code_does_not_name_the_labels() -> None:
    assert "fct_labels_daily" not in _model_code("fct_features_daily")


def test_labels_are_not_an_ancestor_and_no_ancestor_reads_following_rows(tmp_path: Path) -> None:
    result = dbt(
        tmp_path / "data",
        "ls",
        "--quiet",
        "--select",
        "+fct_features_daily",
        "--resource-type",
        "model",
        "--output",
        "name",
    )
    names = {line.strip() for line in result.stdout.splitlines() if re.fullmatch(r"\w+", line.strip())}
    assert {"stg_market__bars", "int_bars__returns", "int_market__daily", "fct_features_daily"} <= names, names
    assert "fct_labels_daily" not in names
    # A window reading later rows would leak the future into t: no lead(), no "... following" frame.
    for name in sorted(names):
        assert not re.search(FUTURE_READS, _model_code(name), re.IGNORECASE), f"{name} reads following rows"
