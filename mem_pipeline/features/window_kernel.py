"""The windowed features of ``fct_features_daily`` in one pass per symbol (numba), each symbol on its own.

Every windowed feature is a mean, a variance, a maximum or a lag over a symbol's last ``n`` rows. A running
window (add the row entering, remove the row leaving) costs a few operations per row whatever ``n``; what a
running window loses is that its value depends on where the running started, and that it keeps the rounding
of everything that went through it. Here neither reaches far:

* each window is recomputed from its own rows (two passes) at the symbol's first row in the frame and at
  every row whose ``obs`` (the row's 1-based position in the symbol's whole history) is a multiple of
  ``anchor_every``, and in between kept as sums of the values minus the last recomputed mean;
* it is recomputed too where those sums would have lost digits (``CANCELLATION``): a spike leaving the
  window, a calm stretch after a move, a flat stretch. Two passes over equal values give that value and a
  variance of exactly 0, so a flat stretch has no spread (the features test for it), not a last-bit residue.

A row's values therefore depend only on the rows from its last anchor's window on, so:

* a symbol's values never depend on other symbols' rows (each symbol is its own loop);
* a frame that starts at least ``anchor_every + n - 2`` rows before a row gives that row the same bits as
  the whole history (``columns.LOOKBACK_ROWS`` and ``rolling.ANCHOR_EVERY`` are chosen for it): an
  incremental day equals a full build exactly, and rows added later never change earlier values.

Missing values are NaN; a window holding one has no mean. Every output is NaN where its window is not full
(the caller turns NaN into null).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from mem_pipeline.features.columns import FEATURE_COLUMNS

LN2 = math.log(2.0)

#: The input columns, in the order ``features`` takes them (float64, NaN missing).
INPUTS: tuple[str, ...] = (
    "close",
    "volume",
    "r",  # ret_1d, 0 on the symbol's first row
    "m",  # mkt_ret_1d, 0 where missing
    "r_plus_m",  # r + m: var(r + m) = var r + var m + 2 cov(r, m)
    "mkt_ret_5d",
    "abs_change",  # |price_change|, 0 on the symbol's first row
    "range_sq",
    "gk_term",
    "dollar_volume",
    "illiquidity",
    "quoted_spread",
    "cs",  # cs_spread, 0 where missing
)
#: The outputs, in the order ``features`` returns them: the mart's windowed columns, in its order.
OUTPUTS: tuple[str, ...] = tuple(
    c for c in FEATURE_COLUMNS if c not in ("close", "ret_1d") and not c.startswith("rank_")
)
RET_5D = OUTPUTS.index("ret_5d")
RET_20D = OUTPUTS.index("ret_20d")
RET_60D = OUTPUTS.index("ret_60d")
RV_5D = OUTPUTS.index("rv_5d")
RV_20D = OUTPUTS.index("rv_20d")
RV_60D = OUTPUTS.index("rv_60d")
PARKINSON_20D = OUTPUTS.index("parkinson_20d")
GARMAN_KLASS_20D = OUTPUTS.index("garman_klass_20d")
MOMENTUM_60_5 = OUTPUTS.index("momentum_60_5")
REVERSAL_5D = OUTPUTS.index("reversal_5d")
MACD = OUTPUTS.index("macd")
PRICE_Z_20D = OUTPUTS.index("price_z_20d")
VOLUME_Z_20D = OUTPUTS.index("volume_z_20d")
DOLLAR_VOLUME_20D = OUTPUTS.index("dollar_volume_20d")
AMIHUD_20D = OUTPUTS.index("amihud_20d")
QUOTED_SPREAD_20D = OUTPUTS.index("quoted_spread_20d")
CS_SPREAD_20D = OUTPUTS.index("cs_spread_20d")
BETA_60D = OUTPUTS.index("beta_60d")
CORR_60D = OUTPUTS.index("corr_60d")
DRAWDOWN_60D = OUTPUTS.index("drawdown_60d")
RSI_14 = OUTPUTS.index("rsi_14")
MACD_SIGNAL_9 = OUTPUTS.index("macd_signal_9")
SPREAD_EST = OUTPUTS.index("spread_est")
#: The windows, (input, rows), in the order of their state.
WINDOWS: tuple[tuple[str, int], ...] = (
    ("r", 5),
    ("r", 20),
    ("r", 60),
    ("m", 60),
    ("r_plus_m", 60),
    ("close", 12),
    ("close", 20),
    ("close", 26),
    ("volume", 20),
    ("abs_change", 14),
    ("range_sq", 20),
    ("gk_term", 20),
    ("dollar_volume", 20),
    ("illiquidity", 20),
    ("quoted_spread", 20),
    ("cs", 20),
)
(
    R_5,
    R_20,
    R_60,
    M_60,
    R_PLUS_M_60,
    CLOSE_12,
    CLOSE_20,
    CLOSE_26,
    VOLUME_20,
    ABS_CHANGE_14,
    RANGE_SQ_20,
    GK_TERM_20,
    DOLLAR_VOLUME_20,
    ILLIQUIDITY_20,
    QUOTED_SPREAD_20,
    CS_20,
) = range(len(WINDOWS))
_SOURCE = np.array([INPUTS.index(column) for column, _ in WINDOWS])
_CLOSE, _VOLUME, _MKT_RET_5D = INPUTS.index("close"), INPUTS.index("volume"), INPUTS.index("mkt_ret_5d")
_ROWS = np.array([rows for _, rows in WINDOWS])
#: The longest window (the lags reach 60 rows back too): an incremental frame must start
#: ``anchor_every + LONGEST - 2`` rows before a row.
LONGEST = int(max(60, *_ROWS))

#: A window is recomputed when its largest term, or its sum of squares about the shift, exceeds this many
#: times its sum of squared deviations about its mean (M2): the sums would have lost that many ulps.
CANCELLATION = 256.0


@njit(cache=True, error_model="numpy")
def _recompute(x: np.ndarray, lo: int, hi: int) -> tuple[int, int, float, float, float]:
    """The window ``x[lo:hi]`` from its own rows: valid count, NaN count, shift (the mean), and the sum and
    sum of squares of the values minus the shift."""
    count = missing = 0
    total = 0.0
    for i in range(lo, hi):
        if math.isnan(x[i]):
            missing += 1
        else:
            count += 1
            total += x[i]
    shift = total / count if count > 0 else 0.0
    s1 = s2 = 0.0
    for i in range(lo, hi):
        if not math.isnan(x[i]):
            s1 += x[i] - shift
            s2 += (x[i] - shift) * (x[i] - shift)
    return count, missing, shift, s1, s2


@njit(cache=True, error_model="numpy")
def _window(x: np.ndarray, n: int, s: int, e: int, anchors: np.ndarray, mean: np.ndarray, var: np.ndarray) -> None:
    """Mean and sample variance of the ``n`` rows of ``x`` ending at each of the rows ``s:e`` (one symbol's),
    fewer at its first rows; NaN where the window holds a missing value. Written to ``mean[i - s]``."""
    count = missing = 0
    shift = s1 = s2 = peak = 0.0
    for i in range(s, e):
        if i == s or anchors[i]:
            count, missing, shift, s1, s2 = _recompute(x, max(s, i - n + 1), i + 1)
            peak = s2
        else:
            value = x[i]
            if math.isnan(value):
                missing += 1
            else:
                count += 1
                s1 += value - shift
                s2 += (value - shift) * (value - shift)
                peak = max(peak, (value - shift) * (value - shift))
            if i - n >= s:
                old = x[i - n]
                if math.isnan(old):
                    missing -= 1
                else:
                    count -= 1
                    s1 -= old - shift
                    s2 -= (old - shift) * (old - shift)
            # The sums carry the rounding of the largest term that went through them, and the variance loses the
            # digits by which that term, or the sums' distance from the mean (s2 = M2 + n (mean - shift)^2),
            # exceed it: a spike leaving the window, a calm or flat stretch after a move. Then recompute.
            if CANCELLATION * (s2 * count - s1 * s1) < max(peak, s2) * count:
                count, missing, shift, s1, s2 = _recompute(x, max(s, i - n + 1), i + 1)
                peak = s2
        if missing > 0 or count == 0:
            mean[i - s] = var[i - s] = np.nan
        else:
            mean[i - s] = shift + s1 / count
            var[i - s] = max(s2 - s1 * s1 / count, 0.0) / (count - 1) if count > 1 else np.nan


@njit(cache=True, error_model="numpy")
def _ratio(num: float, den: float) -> float:
    """``num / den``, missing where ``den`` is 0."""
    return num / den if den != 0 else np.nan


@njit(cache=True, error_model="numpy")
def _symbol(x: tuple[np.ndarray, ...], s: int, e: int, anchors: np.ndarray, out: np.ndarray) -> None:
    """The outputs for one symbol's rows ``s:e`` (in date order). A window of ``n`` rows is full from the
    symbol's ``n``-th row; of ``n`` returns (which start at the symbol's 2nd row), from row ``n + 1``."""
    close, volume, mkt_ret_5d = x[_CLOSE], x[_VOLUME], x[_MKT_RET_5D]  # the inputs read beside the windows
    means, variances = np.empty((len(WINDOWS), e - s)), np.empty((len(WINDOWS), e - s))
    for w in range(len(WINDOWS)):
        _window(x[_SOURCE[w]], _ROWS[w], s, e, anchors, means[w], variances[w])
    out[:, s:e] = np.nan
    macd_line = np.zeros(e - s)  # the MACD line, 0 before it exists, for its 9-row mean
    hi_at = s  # where the maximum close of the last 60 rows is
    for i in range(s, e):
        pos = i - s + 1  # the row's 1-based position among the symbol's rows in the frame
        # the maximum close of the last 60 rows: exact, rescanned only when the maximum leaves the window
        if close[i] >= close[hi_at]:
            hi_at = i
        elif hi_at <= i - 60:
            hi_at = i - 59
            for j in range(i - 58, i + 1):
                if close[j] >= close[hi_at]:
                    hi_at = j

        if pos > 5:
            out[RET_5D, i] = math.log(close[i] / close[i - 5])
            out[REVERSAL_5D, i] = -(out[RET_5D, i] - mkt_ret_5d[i])
            out[RV_5D, i] = math.sqrt(variances[R_5, i - s])
        if pos > 14:
            abs_change_avg = means[ABS_CHANGE_14, i - s]
            if abs_change_avg == 0:  # Cutler's RSI(14) from the net and the total absolute change
                out[RSI_14, i] = 100.0
            elif abs_change_avg > 0:
                net = close[i] - close[i - 14]
                out[RSI_14, i] = min(max(50 + 50 * net / (14 * abs_change_avg), 0.0), 100.0)
        if pos >= 20:
            out[PARKINSON_20D, i] = math.sqrt(means[RANGE_SQ_20, i - s] / (4 * LN2))
            out[GARMAN_KLASS_20D, i] = math.sqrt(max(means[GK_TERM_20, i - s], 0.0))
            out[PRICE_Z_20D, i] = _ratio(close[i] - means[CLOSE_20, i - s], math.sqrt(variances[CLOSE_20, i - s]))
            out[VOLUME_Z_20D, i] = _ratio(volume[i] - means[VOLUME_20, i - s], math.sqrt(variances[VOLUME_20, i - s]))
            out[DOLLAR_VOLUME_20D, i] = means[DOLLAR_VOLUME_20, i - s]
            out[AMIHUD_20D, i] = means[ILLIQUIDITY_20, i - s]
            out[QUOTED_SPREAD_20D, i] = means[QUOTED_SPREAD_20, i - s]
        if pos > 20:
            out[RET_20D, i] = math.log(close[i] / close[i - 20])
            out[RV_20D, i] = math.sqrt(variances[R_20, i - s])
            out[CS_SPREAD_20D, i] = means[CS_20, i - s]
        if pos >= 26:
            out[MACD, i] = (means[CLOSE_12, i - s] - means[CLOSE_26, i - s]) / close[i]
            macd_line[i - s] = out[MACD, i]
        if pos >= 34:  # the MACD line's 9-row mean, from its 9th row
            total = 0.0
            for j in range(i - s - 8, i - s + 1):
                total += macd_line[j]
            out[MACD_SIGNAL_9, i] = total / 9
        if pos >= 60:
            out[DRAWDOWN_60D, i] = close[i] / close[hi_at] - 1
        if pos > 60:
            out[RET_60D, i] = math.log(close[i] / close[i - 60])
            out[MOMENTUM_60_5, i] = math.log(close[i - 5] / close[i - 60])
            var_r, var_m = variances[R_60, i - s], variances[M_60, i - s]
            cov = (variances[R_PLUS_M_60, i - s] - var_r - var_m) / 2
            out[RV_60D, i] = math.sqrt(var_r)
            out[BETA_60D, i] = _ratio(cov, var_m)
            out[CORR_60D, i] = _ratio(cov, math.sqrt(var_r * var_m))
        out[SPREAD_EST, i] = (
            out[CS_SPREAD_20D, i] if math.isnan(out[QUOTED_SPREAD_20D, i]) else out[QUOTED_SPREAD_20D, i]
        )


@njit(cache=True, parallel=True, error_model="numpy")
def features(columns: tuple[np.ndarray, ...], starts: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``OUTPUTS`` (outputs x rows, NaN missing) from ``INPUTS`` (``columns``), for the symbols whose rows
    are ``starts[g]:starts[g + 1]``, each in date order; ``anchors`` marks the rows where every window is
    recomputed from its own rows."""
    out = np.empty((len(OUTPUTS), columns[0].size))  # filled by the symbols' threads
    for g in prange(starts.size - 1):
        _symbol(columns, starts[g], starts[g + 1], anchors, out)
    return out
