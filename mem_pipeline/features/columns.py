"""The columns of the feature and label marts (``dbt_project/models/marts``), in the marts' order: what a
reader of the warehouse, a reference implementation or a benchmark contender must produce."""

from __future__ import annotations

#: Columns of fct_features_daily, in the mart's order.
FEATURE_COLUMNS: tuple[str, ...] = (
    "close",
    "ret_1d",
    "ret_5d",
    "ret_20d",
    "ret_60d",
    "rv_5d",
    "rv_20d",
    "rv_60d",
    "parkinson_20d",
    "garman_klass_20d",
    "momentum_60_5",
    "reversal_5d",
    "macd",
    "price_z_20d",
    "volume_z_20d",
    "dollar_volume_20d",
    "amihud_20d",
    "quoted_spread_20d",
    "cs_spread_20d",
    "beta_60d",
    "corr_60d",
    "drawdown_60d",
    "rsi_14",
    "macd_signal_9",
    "spread_est",
    "rank_ret_20d",
    "rank_rv_20d",
    "rank_momentum_60_5",
    "rank_amihud_20d",
    "rank_volume_z_20d",
)
RANKED: tuple[str, ...] = ("ret_20d", "rv_20d", "momentum_60_5", "amihud_20d", "volume_z_20d")
LABEL_COLUMNS: tuple[str, ...] = ("fwd_ret_1d", "fwd_ret_5d", "fwd_ret_20d", "up_1d", "up_5d", "up_20d")
LABEL_HORIZONS: tuple[int, ...] = (1, 5, 20)
KEY: tuple[str, str] = ("symbol", "trade_date")

# What the features mart reads (its Python model, mem_pipeline/features/rolling.py).
#: Columns of ``int_bars__returns`` the features read.
HISTORY_COLUMNS: tuple[str, ...] = (
    "symbol",
    "trade_date",
    "obs",
    "close",
    "volume",
    "ret_1d",
    "price_change",
    "log_range",
    "log_body",
    "quoted_spread",
    "cs_spread",
)
#: Columns of ``int_market__daily`` the features read.
MARKET_COLUMNS: tuple[str, ...] = ("trade_date", "mkt_ret_1d", "mkt_ret_5d")
#: Rows of a symbol's history before the first rebuilt day that an incremental run reads. The longest
#: window reads 61 rows (ret_60d's lag of 60), MACD's signal line 34; the rest lets the windows be recomputed
#: from their own rows only every ``rolling.ANCHOR_EVERY`` rows.
LOOKBACK_ROWS = 120
