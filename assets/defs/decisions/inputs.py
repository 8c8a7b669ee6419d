"""Where a decision's portfolio state comes from: the execution ledger (positions, equity)."""

import datetime as dt

import polars as pl

from mem_pipeline.paths import Paths


def portfolio_state(paths: Paths, day: dt.date) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """``(positions, equity curve)`` as of ``day``; ``(None, None)`` while nothing has been executed."""
    return None, None
