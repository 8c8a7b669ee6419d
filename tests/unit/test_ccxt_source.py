"""CcxtSource against an in-memory stand-in exchange: offline, no sleeping, fixed clock."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from typing import Any

import ccxt
import polars as pl
import pytest
from leak_support import assert_no_secret, exception_chain

from mem_pipeline.core.credentials import API_KEY_ENV, SECRET_ENV
from mem_pipeline.core.errors import SchemaError, SourceError
from mem_pipeline.core.schemas import BAR_SCHEMA
from mem_pipeline.ingest.sources.base import MarketDataSource
from mem_pipeline.ingest.sources.ccxt_source import CcxtConfig, CcxtSource, build_exchange

DAY_MS = 86_400_000
NOW = dt.datetime(2024, 3, 10, 15, 30, tzinfo=dt.UTC)  # today = 2024-03-10, its candle is still open
TODAY = NOW.date()
BTC, ETH = "BTC/USDT", "ETH/USDT"


def ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def candles(first: dt.date, last: dt.date, base: float) -> list[list[float]]:
    """Deterministic daily candles ``[ms, open, high, low, close, volume]``, one per day."""
    out = []
    for i, day in enumerate(days(first, last)):
        o = base + i
        out.append([ms(day), o, o + 2.0, o - 1.0, o + 0.5, 10.0 + i / 4])
    return out


class StandInExchange:
    """Serves candles from a table like a real exchange: timestamp >= since, at most ``limit``.

    Knobs: ``fail`` (exception classes raised by the next calls, in order; ``fail_forever`` raises
    the first one on every call), unknown symbols raise ``ccxt.BadSymbol``, ``repeat_boundary``
    prepends the newest candle older than ``since`` (``conflicting_repeat`` alters its close),
    ``ignore_since`` always serves from the first candle, ``echo_credentials`` puts the API key and secret
    from the environment into every error text (as careless exchange errors sometimes do).
    """

    def __init__(self, table: dict[str, list[list[float]]], **knobs: Any) -> None:
        self.table = {symbol: sorted(rows) for symbol, rows in table.items()}
        self.calls: list[tuple[str, str, int | None, int | None]] = []
        self.fail: list[type[Exception]] = list(knobs.pop("fail", []))
        self.fail_forever: bool = knobs.pop("fail_forever", False)
        self.repeat_boundary: bool = knobs.pop("repeat_boundary", False)
        self.conflicting_repeat: bool = knobs.pop("conflicting_repeat", False)
        self.ignore_since: bool = knobs.pop("ignore_since", False)
        self.echo_credentials: bool = knobs.pop("echo_credentials", False)
        for name, value in knobs.items():  # e.g. rateLimit, enableRateLimit
            setattr(self, name, value)

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        since: int | None = None,
        limit: int | None = None,
        params: dict | None = None,
    ) -> list[list[float]]:
        self.calls.append((symbol, timeframe, since, limit))
        if self.fail:
            error = self.fail[0] if self.fail_forever else self.fail.pop(0)
            raise error(f"stand-in {error.__name__}{self._echo()}")
        if symbol not in self.table:
            raise ccxt.BadSymbol(f"stand-in does not have market symbol {symbol}{self._echo()}")
        rows = self.table[symbol]
        if since is None or self.ignore_since:
            out = list(rows)
        else:
            out = [c for c in rows if c[0] >= since]
            older = [c for c in rows if c[0] < since]
            if self.repeat_boundary and older:
                repeat = list(older[-1])
                if self.conflicting_repeat:
                    repeat[4] += 1.0
                out = [repeat, *out]
        return [list(c) for c in out[: limit if limit is not None else len(out)]]

    def _echo(self) -> str:
        if not self.echo_credentials:
            return ""
        return f" (request apiKey={os.environ.get(API_KEY_ENV)}, signed with secret {os.environ.get(SECRET_ENV)})"


class Sleeps(list):
    """Injected sleep: records the requested delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def config(symbols: tuple[str, ...] = (BTC,), **kw: Any) -> CcxtConfig:
    kw.setdefault("start", dt.date(2024, 1, 1))
    kw.setdefault("sandbox", False)
    return CcxtConfig(exchange="binance", symbols=symbols, **kw)


def source(exchange: Any, cfg: CcxtConfig | None = None, **kw: Any) -> tuple[CcxtSource, Sleeps]:
    sleeps = Sleeps()
    return CcxtSource(cfg or config(), exchange, sleep=sleeps, clock=lambda: NOW, **kw), sleeps


FULL = {
    BTC: candles(dt.date(2024, 1, 1), TODAY, base=40_000.0),
    ETH: candles(dt.date(2024, 1, 1), TODAY, base=2_000.0),
}


# -- pagination -----------------------------------------------------------------------------------


def test_pagination_collects_every_candle_once_within_the_window() -> None:
    ex = StandInExchange(FULL)
    src, sleeps = source(ex, config((BTC, ETH), limit_per_call=7))
    start, end = dt.date(2024, 1, 5), dt.date(2024, 3, 1)
    out = src.fetch(start, end)

    # 57 days in the window, 7 per page: 9 pages per symbol; the 9th (Mar 1..Mar 7) reaches the end.
    assert len(days(start, end)) == 57
    assert len(ex.calls) == 2 * math.ceil(57 / 7) == 18
    assert all(c[1] == "1d" and c[3] == 7 for c in ex.calls)
    # Each page asks from 1 ms after the newest candle seen: Jan 5, then Jan 11 + 1 ms, Jan 18 + 1 ms, ...
    assert [c[2] for c in ex.calls[:9]] == [ms(start)] + [
        ms(start + dt.timedelta(days=7 * k - 1)) + 1 for k in range(1, 9)
    ]
    assert [c[0] for c in ex.calls] == [BTC] * 9 + [ETH] * 9

    assert out.height == 2 * 57
    assert out.select("symbol", "date").is_unique().all()
    for symbol in (BTC, ETH):
        part = out.filter(pl.col("symbol") == symbol)
        assert part["date"].to_list() == days(start, end)
        expected = [c for c in FULL[symbol] if ms(start) <= c[0] <= ms(end)]
        assert part.select("open", "high", "low", "close", "volume").rows() == [tuple(c[1:]) for c in expected]
        assert part["source_row"].to_list() == list(range(1, 58))
        assert part["source_file"].unique().to_list() == [f"ccxt://binance/{symbol}"]
    assert sleeps == []


def test_output_schema_is_bar_schema_with_null_quotes() -> None:
    out, _ = source(StandInExchange(FULL), config((BTC, ETH)))
    out = out.fetch(dt.date(2024, 2, 1), dt.date(2024, 2, 10))
    assert out.schema == pl.Schema(BAR_SCHEMA)
    assert out["bid"].null_count() == out.height == 20
    assert out["ask"].null_count() == out.height
    assert set(out["symbol"]) == {BTC, ETH}


def test_open_candle_of_today_is_never_returned() -> None:
    ex = StandInExchange(FULL)
    src, _ = source(ex, config(limit_per_call=10))
    out = src.fetch(dt.date(2024, 1, 1), dt.date(2024, 12, 31))  # end in the future

    # Effective end is yesterday (Mar 9): 69 closed days. Page 7 (Mar 1..Mar 10) passes it.
    assert out["date"].max() == TODAY - dt.timedelta(days=1)
    assert TODAY not in out["date"].to_list()
    assert out.height == 69
    assert len(ex.calls) == math.ceil(69 / 10) == 7

    assert src.fetch(TODAY, TODAY).height == 0
    assert src.fetch(TODAY - dt.timedelta(days=1), TODAY)["date"].to_list() == [TODAY - dt.timedelta(days=1)]


def test_window_entirely_today_or_later_makes_no_call() -> None:
    ex = StandInExchange(FULL)
    src, _ = source(ex)
    out = src.fetch(TODAY, TODAY + dt.timedelta(days=5))
    assert out.height == 0 and out.schema == pl.Schema(BAR_SCHEMA)
    assert ex.calls == []


def test_data_ending_before_the_window_needs_one_terminating_empty_page() -> None:
    # 22 candles (Jan 1..22), limit 5: pages of 5,5,5,5,2 — a short page is not trusted as the end
    # (exchanges cap limit), so a 6th call comes back empty: ceil(22/5) + 1.
    ex = StandInExchange({BTC: candles(dt.date(2024, 1, 1), dt.date(2024, 1, 22), 100.0)})
    src, _ = source(ex, config(limit_per_call=5))
    out = src.fetch(dt.date(2024, 1, 1), dt.date(2024, 2, 29))
    assert out["date"].to_list() == days(dt.date(2024, 1, 1), dt.date(2024, 1, 22))
    assert len(ex.calls) == math.ceil(22 / 5) + 1 == 6


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7, 19, 56, 57, 58, 1000])
def test_call_count_is_ceil_of_window_over_limit(limit: int) -> None:
    # Data runs past the window (to today), so the page holding the window's last day ends the loop.
    ex = StandInExchange(FULL)
    src, _ = source(ex, config(limit_per_call=limit))
    out = src.fetch(dt.date(2024, 1, 5), dt.date(2024, 3, 1))
    assert out.height == 57
    assert out["source_row"].to_list() == list(range(1, 58))
    assert len(ex.calls) == math.ceil(57 / limit)


def test_exact_multiple_of_limit_also_reaches_the_end_without_extra_page() -> None:
    ex = StandInExchange(FULL)
    src, _ = source(ex, config(limit_per_call=7))
    out = src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 28))  # 28 days = 4 full pages
    assert out.height == 28
    assert len(ex.calls) == 4


def test_boundary_repeats_are_deduplicated_keeping_first_receipt() -> None:
    ex = StandInExchange(FULL, repeat_boundary=True)
    src, _ = source(ex, config(limit_per_call=7))
    start, end = dt.date(2024, 1, 5), dt.date(2024, 3, 1)
    out = src.fetch(start, end)

    # Every page repeats the previous newest candle (page 1 repeats Jan 4), so each brings 6 new
    # days: ceil(57 / 6) = 10 pages.
    assert len(ex.calls) == math.ceil(57 / 6) == 10
    assert out["date"].to_list() == days(start, end)
    rows = dict(zip(out["date"].to_list(), out["source_row"].to_list(), strict=True))
    assert rows[dt.date(2024, 1, 5)] == 2  # row 1 was Jan 4 (outside the window)
    assert rows[dt.date(2024, 1, 10)] == 7  # first receipt; its repeat was row 8
    assert rows[dt.date(2024, 1, 11)] == 9
    assert out["source_row"].is_sorted() and out["source_row"].is_unique().all()


def test_exchange_repeating_its_last_candle_does_not_loop() -> None:
    # Data ends Jan 20; asked for newer, the exchange returns only Jan 20 again → stop.
    ex = StandInExchange({BTC: candles(dt.date(2024, 1, 1), dt.date(2024, 1, 20), 1.0)}, repeat_boundary=True)
    src, _ = source(ex, config(limit_per_call=10))
    out = src.fetch(dt.date(2024, 1, 1), dt.date(2024, 3, 1))
    # Page 1: Jan 1..10; page 2: Jan 10..19 (9 new); page 3: Jan 19..20 (1 new); page 4: Jan 20 only.
    assert len(ex.calls) == 4
    assert out["date"].to_list() == days(dt.date(2024, 1, 1), dt.date(2024, 1, 20))


def test_exchange_ignoring_since_does_not_loop() -> None:
    ex = StandInExchange(FULL, ignore_since=True)
    src, _ = source(ex, config(limit_per_call=10))
    out = src.fetch(dt.date(2024, 1, 1), dt.date(2024, 3, 1))
    # Page 2 brings the same Jan 1..10 again: nothing newer than since, so the loop stops.
    assert len(ex.calls) == 2
    assert out["date"].to_list() == days(dt.date(2024, 1, 1), dt.date(2024, 1, 10))


# -- malformed candles ----------------------------------------------------------------------------


def test_conflicting_duplicate_raises_schema_error_naming_symbol_and_timestamp() -> None:
    ex = StandInExchange(FULL, repeat_boundary=True, conflicting_repeat=True)
    src, _ = source(ex, config(limit_per_call=7))
    with pytest.raises(SchemaError) as info:
        src.fetch(dt.date(2024, 1, 5), dt.date(2024, 3, 1))
    # Jan 10 arrives as row 7, then its altered repeat as row 8 on page 2.
    err = info.value
    assert err.rule == "duplicate-conflict"
    assert err.source_file == "ccxt://binance/BTC/USDT"
    assert err.rows == (7, 8)
    assert BTC in str(err) and str(ms(dt.date(2024, 1, 10))) in str(err)


def test_repeated_open_candle_with_moving_values_is_not_a_conflict() -> None:
    # Today's candle changes between calls; it is dropped before deduplication.
    table = {BTC: candles(dt.date(2024, 3, 1), TODAY, 1.0)}
    ex = StandInExchange(table)
    ex.table[BTC].append([ms(TODAY), 9.0, 9.0, 9.0, 9.0, 9.0])  # second, different "today" candle
    src, _ = source(ex)
    out = src.fetch(dt.date(2024, 3, 1), TODAY)
    assert out["date"].to_list() == days(dt.date(2024, 3, 1), TODAY - dt.timedelta(days=1))


def test_unaligned_candle_is_a_schema_error() -> None:
    table = {BTC: candles(dt.date(2024, 1, 1), dt.date(2024, 1, 10), 1.0)}
    table[BTC][4][0] += 3_600_000  # Jan 5 01:00 UTC: an hourly-looking timestamp
    src, _ = source(StandInExchange(table))
    with pytest.raises(SchemaError) as info:
        src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 10))
    assert info.value.rule == "timeframe"
    assert info.value.rows == (5,)
    assert "00:00 UTC" in str(info.value)


def test_malformed_candle_is_a_schema_error() -> None:
    src, _ = source(StandInExchange({BTC: [[ms(dt.date(2024, 1, 1)), 1.0, 2.0]]}))
    with pytest.raises(SchemaError, match="candle-shape"):
        src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 10))


def test_null_volume_is_passed_through_for_the_quality_gate() -> None:
    table = {BTC: candles(dt.date(2024, 1, 1), dt.date(2024, 1, 3), 1.0)}
    table[BTC][1][5] = None
    out = source(StandInExchange(table))[0].fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 3))
    assert out["volume"].to_list()[1] is None


# -- failures, retries, pacing --------------------------------------------------------------------


def test_network_errors_are_retried_with_exponential_backoff_then_succeed() -> None:
    ex = StandInExchange(FULL, fail=[ccxt.NetworkError, ccxt.RequestTimeout, ccxt.RateLimitExceeded])
    src, sleeps = source(ex, config(limit_per_call=100))
    out = src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert out.height == 31
    assert len(ex.calls) == 3 + 1  # three failures, then one page holds all 31
    assert sleeps == [1.0, 2.0, 4.0]


def test_backoff_base_is_configurable() -> None:
    ex = StandInExchange(FULL, fail=[ccxt.NetworkError, ccxt.NetworkError])
    src, sleeps = source(ex, config(limit_per_call=100), backoff_base=0.25)
    src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert sleeps == [0.25, 0.5]


def test_retries_exhausted_raise_source_error_naming_exchange_symbol_and_window() -> None:
    ex = StandInExchange(FULL, fail=[ccxt.RequestTimeout], fail_forever=True)
    src, sleeps = source(ex, config(max_retries=3))
    with pytest.raises(SourceError) as info:
        src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    message = str(info.value)
    assert "binance" in message and BTC in message
    assert "2024-01-01..2024-01-31" in message
    assert "4 attempts" in message and "RequestTimeout" in message
    assert len(ex.calls) == 4  # first try + 3 retries
    assert sleeps == [1.0, 2.0, 4.0]
    assert exception_chain(info.value) == [info.value]  # the exchange's own error (it may echo secrets) is not kept


def test_zero_retries_fails_on_first_network_error() -> None:
    ex = StandInExchange(FULL, fail=[ccxt.NetworkError], fail_forever=True)
    src, sleeps = source(ex, config(max_retries=0))
    with pytest.raises(SourceError, match="after 1 attempts"):
        src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert len(ex.calls) == 1 and sleeps == []


def test_bad_symbol_is_a_source_error_without_retry() -> None:
    ex = StandInExchange(FULL)
    src, sleeps = source(ex, config(("NOPE/USDT",)))
    with pytest.raises(SourceError) as info:
        src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert "NOPE/USDT" in str(info.value) and "binance" in str(info.value)
    assert "symbol" in str(info.value)
    assert len(ex.calls) == 1 and sleeps == []


def test_exchange_error_is_a_source_error_without_retry() -> None:
    ex = StandInExchange(FULL, fail=[ccxt.ExchangeError], fail_forever=True)
    src, sleeps = source(ex)
    with pytest.raises(SourceError, match="ExchangeError") as info:
        src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert BTC in str(info.value)
    assert len(ex.calls) == 1 and sleeps == []


def test_rate_limit_is_honoured_when_the_exchange_does_not_throttle_itself() -> None:
    ex = StandInExchange(FULL, rateLimit=250)
    src, sleeps = source(ex, config((BTC, ETH), limit_per_call=10))
    src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 30))  # 3 pages per symbol
    assert len(ex.calls) == 6
    assert sleeps == [0.25] * 5  # between calls, not before the first


def test_no_extra_sleep_when_the_exchange_throttles_itself() -> None:
    ex = StandInExchange(FULL, rateLimit=250, enableRateLimit=True)
    src, sleeps = source(ex, config(limit_per_call=10))
    src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 30))
    assert len(ex.calls) == 3 and sleeps == []


def test_backoff_never_waits_less_than_the_rate_limit() -> None:
    ex = StandInExchange(FULL, rateLimit=3000, fail=[ccxt.NetworkError, ccxt.NetworkError, ccxt.NetworkError])
    src, sleeps = source(ex, config(limit_per_call=100))
    src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert sleeps == [3.0, 3.0, 4.0]


# -- config, protocol, date range -----------------------------------------------------------------


def test_config_from_params() -> None:
    cfg = CcxtConfig.from_params(
        {"exchange": "binance", "symbols": ["BTC/USDT", "ETH/USDT"], "start": "2024-01-01", "sandbox": False}
    )
    assert cfg == CcxtConfig("binance", (BTC, ETH), dt.date(2024, 1, 1), False, 1000, 5)
    assert CcxtConfig.from_params(
        {
            "exchange": "kraken",
            "symbols": [BTC],
            "start": None,
            "sandbox": True,
            "limit_per_call": 500,
            "max_retries": 2,
        }
    ) == CcxtConfig("kraken", (BTC,), None, True, 500, 2)
    assert CcxtConfig.from_params({"exchange": "binance", "symbols": [BTC], "start": dt.date(2023, 5, 1)}).start == (
        dt.date(2023, 5, 1)
    )


@pytest.mark.parametrize(
    "params",
    [
        {"symbols": [BTC]},
        {"exchange": "binance"},
        {"exchange": "binance", "symbols": []},
        {"exchange": "binance", "symbols": "BTC/USDT"},
        {"exchange": "binance", "symbols": [BTC, BTC]},
        {"exchange": "binance", "symbols": [BTC], "start": "01/01/2024"},
        {"exchange": "binance", "symbols": [BTC], "limit_per_call": 0},
        {"exchange": "binance", "symbols": [BTC], "max_retries": -1},
        {"exchange": "binance", "symbols": [BTC], "sandbox": "false"},
    ],
)
def test_config_rejects_bad_params(params: dict[str, Any]) -> None:
    with pytest.raises(SourceError):
        CcxtConfig.from_params(params)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        config().exchange = "kraken"  # type: ignore[misc]


def test_date_range_and_protocol() -> None:
    src, _ = source(StandInExchange(FULL))
    assert isinstance(src, MarketDataSource)
    assert src.name == "ccxt"
    assert src.date_range() == (dt.date(2024, 1, 1), dt.date(2024, 3, 9))
    assert source(StandInExchange(FULL), config(start=None))[0].date_range() is None


# -- the real ccxt exchange (constructed only; never touches the network) -------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make any ccxt HTTP request or market load fail loudly; record market loads instead."""
    loads: list[str] = []

    def fake_load_markets(self: Any, reload: bool = False, params: dict | None = None) -> dict:
        loads.append(self.id)
        return {}

    def no_fetch(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(ccxt.Exchange, "fetch", no_fetch)
    monkeypatch.setattr(ccxt.binance, "load_markets", fake_load_markets)
    return loads


def test_credentials_come_only_from_the_environment(monkeypatch: pytest.MonkeyPatch, no_network: list[str]) -> None:
    key, secret = "key-FROM-ENV-7f3a", "secret-FROM-ENV-91bc"
    monkeypatch.setenv("MEM_CCXT_API_KEY", key)
    monkeypatch.setenv("MEM_CCXT_SECRET", secret)
    cfg = config((BTC, ETH))

    exchange = build_exchange(cfg)  # construction only
    assert isinstance(exchange, ccxt.binance)
    assert exchange.apiKey == key and exchange.secret == secret
    assert exchange.enableRateLimit is True
    assert no_network == []  # building does not load markets

    src = CcxtSource(cfg, exchange, sleep=Sleeps(), clock=lambda: NOW)
    for text in (repr(src), str(src), str(cfg), repr(cfg)):
        assert key not in text and secret not in text


def test_lazy_exchange_is_built_then_markets_loaded(monkeypatch: pytest.MonkeyPatch, no_network: list[str]) -> None:
    monkeypatch.delenv("MEM_CCXT_API_KEY", raising=False)
    monkeypatch.delenv("MEM_CCXT_SECRET", raising=False)
    src = CcxtSource(config(sandbox=True), sleep=Sleeps(), clock=lambda: NOW)
    assert no_network == []  # nothing happens at construction
    exchange = src.exchange()
    assert isinstance(exchange, ccxt.binance)
    assert no_network == ["binance"]
    assert not exchange.apiKey and not exchange.secret  # nothing passed when unset
    assert "testnet" in str(exchange.urls["api"])  # sandbox mode on
    assert src.exchange() is exchange and no_network == ["binance"]  # built once


def test_market_loading_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[int] = []

    def flaky_load_markets(self: Any, reload: bool = False, params: dict | None = None) -> dict:
        attempts.append(1)
        if len(attempts) < 3:
            raise ccxt.ExchangeNotAvailable("down")
        return {}

    monkeypatch.setattr(ccxt.binance, "load_markets", flaky_load_markets)
    sleeps = Sleeps()
    CcxtSource(config(), sleep=sleeps, clock=lambda: NOW).exchange()
    assert len(attempts) == 3 and sleeps == [1.0, 2.0]


def test_unknown_exchange_is_a_source_error() -> None:
    cfg = CcxtConfig(exchange="NetworkError", symbols=(BTC,), start=None, sandbox=False)
    with pytest.raises(SourceError, match="no exchange"):
        build_exchange(cfg)


# -- credentials echoed by exchange errors --------------------------------------------------------

LEAKY_KEY, LEAKY_SECRET = "leaky-key-Q7wT2m", "leaky-secret-Hs81Zp"


@pytest.mark.parametrize(
    ("knobs", "symbols", "expected"),
    [
        ({"fail": [ccxt.RequestTimeout], "fail_forever": True}, (BTC,), "after 3 attempts"),  # retries logged
        ({"fail": [ccxt.NetworkError, ccxt.ExchangeError]}, (BTC,), "ExchangeError"),
        ({"fail": [ccxt.AuthenticationError]}, (BTC,), "AuthenticationError"),
        ({}, ("NOPE/USDT",), "does not know this symbol"),
    ],
    ids=["retries-exhausted", "exchange-error-after-retry", "authentication", "bad-symbol"],
)
def test_credentials_echoed_by_exchange_errors_reach_no_exception_chain_traceback_or_log(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    knobs: dict[str, Any],
    symbols: tuple[str, ...],
    expected: str,
) -> None:
    monkeypatch.setenv(API_KEY_ENV, LEAKY_KEY)
    monkeypatch.setenv(SECRET_ENV, LEAKY_SECRET)
    caplog.set_level(logging.DEBUG)
    ex = StandInExchange(FULL, echo_credentials=True, **knobs)
    src, _ = source(ex, config(symbols, max_retries=2))
    with pytest.raises(SourceError, match=expected) as info:
        src.fetch(dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert "apiKey=***" in str(info.value) and "secret ***" in str(info.value)  # echoed, masked, still told
    assert_no_secret(info.value, caplog, LEAKY_KEY, LEAKY_SECRET)


def test_credentials_echoed_while_loading_markets_or_switching_to_sandbox_are_masked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(API_KEY_ENV, LEAKY_KEY)
    monkeypatch.setenv(SECRET_ENV, LEAKY_SECRET)
    caplog.set_level(logging.DEBUG)
    echo = f"apiKey={LEAKY_KEY} secret={LEAKY_SECRET}"

    def failing_load_markets(self: Any, reload: bool = False, params: dict | None = None) -> dict:
        raise ccxt.ExchangeNotAvailable(f"down: {echo}")

    def failing_sandbox(self: Any, enabled: bool) -> None:
        raise ccxt.NotSupported(f"no testnet: {echo}")

    monkeypatch.setattr(ccxt.binance, "load_markets", failing_load_markets)
    with pytest.raises(SourceError, match="loading markets") as info:
        CcxtSource(config(max_retries=1), sleep=Sleeps(), clock=lambda: NOW).exchange()
    assert "apiKey=***" in str(info.value)
    assert_no_secret(info.value, caplog, LEAKY_KEY, LEAKY_SECRET)

    monkeypatch.setattr(ccxt.binance, "set_sandbox_mode", failing_sandbox)
    with pytest.raises(SourceError, match="no sandbox") as info:
        build_exchange(config(sandbox=True))
    assert "apiKey=***" in str(info.value)
    assert_no_secret(info.value, caplog, LEAKY_KEY, LEAKY_SECRET)
