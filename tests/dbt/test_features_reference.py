"""fct_features_daily and fct_labels_daily agree with an independent reference implementation.

Two lakes (see ``harness``): the synthetic market, whose bid/ask make ``spread_est`` the mean quoted
spread, and hand-made random walks without bid/ask (the Corwin-Schultz path) with a late starter, an early
leaver, missing days, a zero-volume day, flat stretches and a monotone rise. The reference reads the very
bars dbt read (the lake), and every column must agree with nulls in exactly the same rows.

Tolerance: 1e-9 absolute for every column (they are O(1) or bounded by 100: returns, vols, z-scores, ranks,
RSI), except ``dollar_volume_20d`` which is compared relatively (1e-9 x |reference|). Its values are
10^5..10^9 currency units; a double carries ~16 significant digits, so summing 20 of them in another order
legitimately moves the mean by ~1e-7 absolute (observed: 4.8e-7), while a relative 1e-9 is still millions
of times tighter than any definitional error (a window one row off moves the mean by ~5%). Differences
elsewhere are last-bit rounding (running window sums against this module's two-pass windows).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.dbt.harness import (
    EARLY_END,
    FILES_DAYS,
    FILES_START,
    HEAD_START,
    LATE_START,
    ZERO_VOLUME_DAY,
    assert_same_values,
    build_files,
    build_synthetic,
    business_days,
    files_bars,
    lake_bars,
    load,
    synthetic_bars,
)
from tests.dbt.reference_features import (
    FEATURE_COLUMNS,
    KEY,
    LABEL_COLUMNS,
    RANKED,
    reference_features,
    reference_labels,
)

ABS_TOL = 1e-9
REL_TOL = {"dollar_volume_20d": 1e-9}

BUILDERS = {"synthetic": build_synthetic, "files": build_files}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def lake(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    source = request.param
    return source, BUILDERS[source](tmp_path_factory)


@pytest.fixture(scope="module")
def reference(lake: tuple[str, Path]) -> tuple[pl.DataFrame, pl.DataFrame]:
    source, data_dir = lake
    bars = lake_bars(data_dir, source)
    return reference_features(bars), reference_labels(bars)


def test_features_match_reference(lake: tuple[str, Path], reference: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    _, data_dir = lake
    sql = load(data_dir, "fct_features_daily")
    assert sql.columns == [*KEY, *FEATURE_COLUMNS], "a column was added/renamed: give it a reference first"
    assert sql.select(KEY).is_unique().all()
    assert_same_values(sql, reference[0], FEATURE_COLUMNS, abs_tol=ABS_TOL, rel_tol=REL_TOL)


def test_labels_match_reference(lake: tuple[str, Path], reference: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    _, data_dir = lake
    sql = load(data_dir, "fct_labels_daily")
    assert sql.columns == [*KEY, *LABEL_COLUMNS]
    assert sql.select(KEY).is_unique().all()
    assert_same_values(sql, reference[1], LABEL_COLUMNS, abs_tol=ABS_TOL)


# The comparisons above only mean something if the lakes reach the branches they are meant to reach.
# These guards read the reference alone (no dbt), so a change to the lakes cannot silently weaken them.


def _guard_reference(source: str) -> pl.DataFrame:
    bars = synthetic_bars() if source == "synthetic" else files_bars()
    return reference_features(bars)


def test_synthetic_lake_takes_the_quoted_spread_path() -> None:
    ref = _guard_reference("synthetic")
    warm = ref.filter(pl.col("spread_est").is_not_null())
    assert warm.height > 1000
    assert warm["quoted_spread_20d"].null_count() == 0
    assert (warm["spread_est"] == warm["quoted_spread_20d"]).all()
    # and the two estimators differ, so taking the wrong one would show
    both = warm.drop_nulls("cs_spread_20d")
    assert ((both["spread_est"] - both["cs_spread_20d"]).abs() > 1e-6).mean() > 0.9


def test_files_lake_reaches_the_edge_cases() -> None:
    ref = _guard_reference("files")
    days = business_days(FILES_START, FILES_DAYS)
    # no quotes: spread_est is the Corwin-Schultz mean, which is not always 0
    assert ref["quoted_spread_20d"].null_count() == ref.height
    warm = ref.drop_nulls("spread_est")
    assert (warm["spread_est"] == warm["cs_spread_20d"]).all() and (warm["spread_est"] > 0).mean() > 0.5
    # late starter and early leaver
    first_last = ref.group_by("symbol").agg(
        pl.col("trade_date").min().alias("first"), pl.col("trade_date").max().alias("last")
    )
    spans = {symbol: (first, last) for symbol, first, last in first_last.iter_rows()}
    assert spans["LATE"][0] == days[LATE_START] and spans["END"][1] == days[EARLY_END]
    # missing days shorten GAP's history in rows
    assert ref.filter(pl.col("symbol") == "GAP").height < FILES_DAYS
    # zero volume: no Amihud ratio that day, so amihud_20d is null for the 20 rows that hold it
    zvol = ref.filter(pl.col("symbol") == "ZVOL").with_row_index("obs")
    null_after_warmup = zvol.filter((pl.col("obs") >= 20) & pl.col("amihud_20d").is_null())
    assert null_after_warmup["trade_date"].to_list() == days[ZERO_VOLUME_DAY : ZERO_VOLUME_DAY + 20]
    # flat stretches: zero std (price_z null on a full window), RSI 100 without gains, ties in ranks
    flat = ref.filter(pl.col("symbol").is_in(["FLAT1", "FLAT2"]))
    assert flat.filter(pl.col("price_z_20d").is_null() & pl.col("volume_z_20d").is_not_null()).height > 0
    assert flat.filter(pl.col("rsi_14") == 100).height > 0
    # a steady rise: RSI 100 with gains
    assert ref.filter((pl.col("symbol") == "UP") & (pl.col("rsi_14") == 100)).height > 0
    for column in ("ret_20d", "rv_20d", "amihud_20d"):
        ties = ref.drop_nulls(column).group_by("trade_date", column).len().filter(pl.col("len") > 1)
        assert ties.height > 0, f"no tie in {column}: rank ties untested"
    # cross-sections of one symbol (rank 0) and of many
    for column in RANKED:
        sizes = ref.drop_nulls(column).group_by("trade_date").len()["len"]
        assert sizes.max() >= 5
    lone = ref.filter(pl.col("ret_20d").is_not_null().sum().over("trade_date") == 1).drop_nulls("ret_20d")
    assert lone.height == HEAD_START and (lone["rank_ret_20d"] == 0).all()
