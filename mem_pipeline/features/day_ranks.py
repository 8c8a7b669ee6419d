"""Per-day percent ranks of several columns: one vectorised sort of a days x symbols panel per column.

``percent_rank`` as SQL defines it: ``(rank - 1) / (n - 1)`` among the day's ``n`` non-missing values, ties
sharing their lowest rank, a day's only value 0. The rows are laid out as a panel, a day per row (padded with
NaN, which sorts last); numpy argsorts every day of a column in one call (its SIMD sort: 36 ms for 3,651 days
x 800 symbols, where polars' ``rank().over(day)`` took about 0.13 s a column and numba's own sort 0.1 s), and
a numba pass walks each day's sorted values to give the ties their lowest rank. The columns run on two
threads (numpy's sort and the numba pass release the GIL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _ranks_in_order(panel: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Percent ranks of ``panel``'s rows, given each row's ascending ``order`` (NaN last, and left NaN)."""
    ranks = np.full(panel.shape, np.nan)
    for d in range(panel.shape[0]):
        row, sorted_at = panel[d], order[d]
        n = 0
        while n < row.size and not np.isnan(row[sorted_at[n]]):
            n += 1
        first = 0  # the place of the first of the current run of equal values: its rank - 1
        for p in range(n):
            if p > 0 and row[sorted_at[p]] != row[sorted_at[p - 1]]:
                first = p
            ranks[d, sorted_at[p]] = first / max(n - 1, 1)
    return ranks


class DayPanel:
    """Each row's cell in a days x width panel: ``cell`` = day x width + its place among the day's rows."""

    def __init__(self, day: np.ndarray) -> None:
        counts = np.bincount(day)
        dense = (np.cumsum(counts > 0) - 1)[day]  # days without rows take no panel row
        counts = counts[counts > 0]
        order = np.argsort(dense, kind="stable")
        place = np.empty(day.size, dtype=np.int64)
        place[order] = np.arange(day.size) - np.repeat(np.cumsum(counts) - counts, counts)
        self.shape = (counts.size, int(counts.max()))
        self.cell = dense * self.shape[1] + place

    def percent_ranks(self, values: np.ndarray) -> np.ndarray:
        """Percent ranks of ``values`` (one per row, NaN missing) within each day; NaN where missing."""
        panel = np.full(self.shape, np.nan)
        panel.reshape(-1)[self.cell] = values
        ranks = _ranks_in_order(panel, np.argsort(panel, axis=1))
        return ranks.reshape(-1)[self.cell]


def percent_ranks(columns: list[np.ndarray], day: np.ndarray) -> list[np.ndarray]:
    """Per-day percent ranks of each of ``columns`` (NaN missing) for rows on ``day`` (non-negative day
    numbers)."""
    panel = DayPanel(day)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(panel.percent_ranks, columns))
