"""Column names of the direction-signal frames and the signal model's error.

A signal frame holds ``symbol``, ``trade_date``, the feature columns and — for fitting and scoring
only — the labels ``up_1d`` (0/1) and ``fwd_ret_1d``. ``known_date`` is the date of the bar a label
reads: when its outcome became known. The strategy features are the inputs of the rule-based
strategies (``strategies.strategy_signals``).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from mem_pipeline.core.errors import MemError

SYMBOL = "symbol"
DATE = "trade_date"
LABEL = "up_1d"
RETURN = "fwd_ret_1d"
KNOWN_DATE = "known_date"
STRATEGY_FEATURES = ("momentum_60_5", "reversal_5d")
#: Columns of ``fct_features_daily`` that are keys or raw prices, not model inputs.
NOT_FEATURES = ("symbol", "trade_date", "close")


def feature_columns(columns: Sequence[str]) -> list[str]:
    """The model inputs among ``fct_features_daily``'s columns."""
    return [c for c in columns if c not in NOT_FEATURES]


class SignalError(MemError, ValueError):
    """Bad signal-model configuration or input (names the key or column and the rule broken)."""


class TooLittleHistory(SignalError):
    """The rows or dates given are too few to fit the model (more history, or a wider universe, would do)."""


def require_columns(frame: pl.DataFrame, columns: Sequence[str], where: str) -> None:
    """Raise ``SignalError`` naming ``where`` and the missing columns unless ``frame`` has all ``columns``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SignalError(f"{where}: missing columns {missing} (has {frame.columns})")
