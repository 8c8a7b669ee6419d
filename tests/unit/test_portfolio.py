"""Positions and equity from ledger fills, against a hand calculation."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from mem_pipeline.decisions.portfolio import FILL_SCHEMA, equity_curve, positions_as_of

D1, D2, D3 = dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)


def test_equity_is_cash_plus_positions_marked_at_the_close() -> None:
    fill_rows = [(D1, "A", 10.0, 100.0), (D2, "A", -4.0, 110.0), (D2, "B", -5.0, 20.0)]
    fill_frame = pl.DataFrame(fill_rows, schema=FILL_SCHEMA, orient="row")
    closes = pl.DataFrame(
        {
            "symbol": ["A", "A", "A", "B", "B"],
            "trade_date": [D1, D2, D3, D2, D3],
            "close": [101.0, 108.0, 112.0, 21.0, 19.0],
        }
    )
    curve = equity_curve(fill_frame, closes, 10_000.0)
    # D1: paid 1000, holds 10 A at 101 -> 10000 - 1000 + 1010 = 10010
    # D2: received 440 (sold 4 A at 110) and 100 (short 5 B at 20): cash 10000 - 1000 + 440 + 100 = 9540;
    #     6 A at 108 = 648, -5 B at 21 = -105 -> 10083
    # D3: 6 A at 112 = 672, -5 B at 19 = -95 -> 9540 + 577 = 10117
    assert curve["trade_date"].to_list() == [D1, D2, D3]
    assert curve["equity"].to_list() == pytest.approx([10_010.0, 10_083.0, 10_117.0])
    assert positions_as_of(fill_frame).rows() == [("A", 6.0), ("B", -5.0)]
    assert equity_curve(fill_frame.clear(), closes, 10_000.0) is None


def test_a_fill_on_a_day_without_closes_is_marked_at_its_price() -> None:
    # B bought on D1 (no close for anything that day), closes at 55 on D2: 10000 - 250 + 275 = 10025.
    fill_frame = pl.DataFrame([(D1, "B", 5.0, 50.0)], schema=FILL_SCHEMA, orient="row")
    closes = pl.DataFrame({"symbol": ["B"], "trade_date": [D2], "close": [55.0]})
    curve = equity_curve(fill_frame, closes, 10_000.0)
    assert curve["trade_date"].to_list() == [D1, D2]
    assert curve["equity"].to_list() == pytest.approx([10_000.0, 10_025.0])
