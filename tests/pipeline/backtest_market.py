"""A small synthetic market (10 symbols, 2016) in a lake and through dbt, for the backtest's tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from mem_pipeline.backtest.walk_forward import History
from mem_pipeline.core.paths import Paths
from mem_pipeline.features.dbt_cli import dbt
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, SyntheticMarket, generate_market
from tests.dbt.harness import write_lake


def synthetic_history(data_dir: Path, end: dt.date, n_symbols: int = 10) -> tuple[History, SyntheticMarket]:
    """The default synthetic market cut to ``n_symbols`` and 2016-01-04 .. ``end``, built into ``data_dir``."""
    config = dataclasses.replace(
        SyntheticConfig.from_params_file(), n_symbols=n_symbols, start=dt.date(2016, 1, 4), end=end
    )
    market = generate_market(config)
    write_lake(data_dir, "synthetic", market.bars())
    dbt(data_dir, "run", dbt_vars={"source": "synthetic"})
    return History.read(Paths(data_dir), "synthetic", end), market
