"""Daily OHLCV bars from a crypto exchange through ccxt.

Each symbol is paged forward with ``fetch_ohlcv(symbol, "1d", since=..., limit=...)`` from the start
of the window until a page reaches its end (or the exchange has nothing newer). Candles are
``[ms_timestamp, open, high, low, close, volume]`` opening at 00:00 UTC; the candle of today (UTC)
is still open, so no bar dated today or later is ever returned.

Credentials come only from ``MEM_CCXT_API_KEY`` / ``MEM_CCXT_SECRET`` and are handed to ccxt and
nowhere else; an exchange error (which may echo them) is kept only as masked text, never as the
``__cause__``/``__context__`` of the ``SourceError`` raised. Tests inject a stand-in exchange (anything
with ``fetch_ohlcv``), a recording ``sleep`` and a fixed ``clock``, so they run offline and never wait.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ccxt
import polars as pl

from mem_pipeline.core.credentials import API_KEY_ENV, SECRET_ENV, exchange_credentials, masked_error
from mem_pipeline.core.errors import SchemaError, SourceError
from mem_pipeline.core.schemas import BAR_SCHEMA, conform_bars, empty_bars

__all__ = ["API_KEY_ENV", "SECRET_ENV", "TIMEFRAME", "CcxtConfig", "CcxtSource", "build_exchange"]

log = logging.getLogger(__name__)

TIMEFRAME = "1d"
DAY_MS = 86_400_000
_EPOCH = dt.date(1970, 1, 1)
_VALUE_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class CcxtConfig:
    """Which exchange and symbols to ingest (``params.yaml`` → ``sources.ccxt``). Holds no secrets."""

    exchange: str
    symbols: tuple[str, ...]
    start: dt.date | None
    sandbox: bool
    limit_per_call: int = 1000
    max_retries: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.exchange, str) or not self.exchange.strip():
            raise SourceError(f"sources.ccxt.exchange must be a ccxt exchange id, got {self.exchange!r}")
        if isinstance(self.symbols, str):
            raise SourceError(f"sources.ccxt.symbols must be a list of symbols, got the string {self.symbols!r}")
        symbols = tuple(self.symbols)
        if not symbols or not all(isinstance(s, str) and s for s in symbols):
            raise SourceError(f"sources.ccxt.symbols must be a non-empty list of symbols, got {self.symbols!r}")
        repeated = sorted({s for s in symbols if symbols.count(s) > 1})
        if repeated:
            raise SourceError(f"sources.ccxt.symbols lists {', '.join(repeated)} more than once")
        object.__setattr__(self, "symbols", symbols)
        if not isinstance(self.sandbox, bool):
            raise SourceError(f"sources.ccxt.sandbox must be true or false, got {self.sandbox!r}")
        if self.start is not None and not isinstance(self.start, dt.date):
            raise SourceError(f"sources.ccxt.start must be a date or null, got {self.start!r}")
        if isinstance(self.start, dt.datetime):
            object.__setattr__(self, "start", self.start.date())
        if not isinstance(self.limit_per_call, int) or isinstance(self.limit_per_call, bool) or self.limit_per_call < 1:
            raise SourceError(f"sources.ccxt.limit_per_call must be a positive integer, got {self.limit_per_call!r}")
        if not isinstance(self.max_retries, int) or isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise SourceError(f"sources.ccxt.max_retries must be a non-negative integer, got {self.max_retries!r}")

    @classmethod
    def from_params(cls, d: Mapping[str, Any]) -> CcxtConfig:
        """Build from the ``sources.ccxt`` mapping (``start`` may be an ISO string, a date or null)."""
        missing = [key for key in ("exchange", "symbols") if d.get(key) is None]
        if missing:
            raise SourceError(f"sources.ccxt is missing {', '.join(missing)}")
        start = d.get("start")
        if isinstance(start, str):
            try:
                start = dt.date.fromisoformat(start.strip())
            except ValueError as exc:
                raise SourceError(f"sources.ccxt.start must be an ISO date (YYYY-MM-DD), got {start!r}") from exc
        extra: dict[str, Any] = {}
        for key in ("limit_per_call", "max_retries"):
            if d.get(key) is not None:
                extra[key] = d[key]
        symbols = d["symbols"]
        return cls(
            exchange=d["exchange"],
            symbols=symbols if isinstance(symbols, str) else tuple(symbols),
            start=start,
            sandbox=d.get("sandbox", False),
            **extra,
        )


def build_exchange(config: CcxtConfig) -> Any:
    """Construct the configured ccxt exchange (no network call): rate limiting on, credentials from
    the environment when set, sandbox mode when configured, and ``fetchOHLCV`` support checked."""
    if config.exchange not in ccxt.exchanges:
        raise SourceError(f"ccxt has no exchange {config.exchange!r} (sources.ccxt.exchange)")
    options: dict[str, Any] = {"enableRateLimit": True, **exchange_credentials()}
    exchange = getattr(ccxt, config.exchange)(options)
    if config.sandbox:
        error: SourceError | None = None
        try:
            exchange.set_sandbox_mode(True)
        except ccxt.BaseError as exc:
            error = SourceError(f"ccxt exchange {config.exchange!r} has no sandbox: {masked_error(exc)}")
        if error is not None:
            raise error  # outside the handler: the exchange's unmasked error is not chained
    if not exchange.has.get("fetchOHLCV"):
        raise SourceError(f"ccxt exchange {config.exchange!r} does not provide OHLCV candles (fetchOHLCV)")
    return exchange


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ms(day: dt.date) -> int:
    """Milliseconds since the epoch at 00:00 UTC of ``day``."""
    return (day - _EPOCH).days * DAY_MS


def _same(a: Sequence[float | None], b: Sequence[float | None]) -> bool:
    """Values equal, treating NaN as equal to NaN."""
    return all(
        x == y or (x is not None and y is not None and math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b, strict=True)
    )


class _Pacer:
    """Spaces the calls of one fetch ``interval`` seconds apart; backs off exponentially on retries."""

    def __init__(self, sleep: Callable[[float], None], interval: float, backoff_base: float) -> None:
        self.sleep = sleep
        self.interval = interval
        self.backoff_base = backoff_base
        self.calls = 0

    def before_call(self) -> None:
        if self.calls and self.interval > 0:
            self.sleep(self.interval)
        self.calls += 1

    def backoff(self, attempt: int) -> None:
        """Wait before retry ``attempt + 1`` (this wait also covers the rate-limit spacing)."""
        self.sleep(max(self.backoff_base * 2**attempt, self.interval))
        self.calls += 1


class CcxtSource:
    """``MarketDataSource`` for daily candles of ``config.symbols`` on ``config.exchange``.

    ``exchange`` injects a ready exchange object (tests); otherwise the real ccxt exchange is built
    and its markets loaded on the first fetch. ``sleep`` (seconds) and ``clock`` (aware UTC now) are
    injectable; ``backoff_base`` is the first retry delay in seconds, doubled on each further retry.
    """

    name = "ccxt"

    def __init__(
        self,
        config: CcxtConfig,
        exchange: object | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], dt.datetime] = _utc_now,
        backoff_base: float = 1.0,
    ) -> None:
        self.config = config
        self._exchange = exchange
        self._sleep = sleep
        self._clock = clock
        self._backoff_base = backoff_base

    def __repr__(self) -> str:
        c = self.config
        return f"CcxtSource(exchange={c.exchange!r}, symbols={c.symbols!r}, start={c.start!r}, sandbox={c.sandbox!r})"

    # -- protocol -------------------------------------------------------------------------------

    def date_range(self) -> tuple[dt.date, dt.date] | None:
        """``(config.start, yesterday UTC)``; None when no start is configured."""
        if self.config.start is None:
            return None
        return self.config.start, self._today() - dt.timedelta(days=1)

    def fetch(self, start: dt.date, end: dt.date) -> pl.DataFrame:
        """Closed daily bars with ``start <= date <= end`` (and ``date < today UTC``) for every symbol."""
        last = min(end, self._today() - dt.timedelta(days=1))
        if start > last:
            return empty_bars()
        exchange = self.exchange()
        pacer = _Pacer(self._sleep, self._call_interval(exchange), self._backoff_base)
        frames = [self._fetch_symbol(exchange, pacer, symbol, start, last) for symbol in self.config.symbols]
        return conform_bars(pl.concat(frames, how="vertical"))

    # -- exchange -------------------------------------------------------------------------------

    def exchange(self) -> Any:
        """The exchange in use: the injected one, or the real one built and with markets loaded."""
        if self._exchange is None:
            exchange = build_exchange(self.config)
            self._load_markets(exchange)
            self._exchange = exchange
        return self._exchange

    def _load_markets(self, exchange: Any) -> None:
        pacer = _Pacer(self._sleep, 0.0, self._backoff_base)
        self._with_retries(pacer, exchange.load_markets, what="loading markets")

    @staticmethod
    def _call_interval(exchange: Any) -> float:
        """Seconds to wait between calls: none when the exchange throttles itself, else ``rateLimit`` ms."""
        if getattr(exchange, "enableRateLimit", False):
            return 0.0
        rate_limit = getattr(exchange, "rateLimit", None)
        if isinstance(rate_limit, (int, float)) and not isinstance(rate_limit, bool) and rate_limit > 0:
            return rate_limit / 1000.0
        return 0.0

    def _with_retries(self, pacer: _Pacer, call: Callable[[], Any], *, what: str, symbol: str | None = None) -> Any:
        """Run ``call``; retry network errors with backoff, turn every ccxt error into ``SourceError``.

        The ``SourceError`` carries the exchange error's masked text only and is raised outside the ``except``
        block, so the original (which may echo the credentials) is neither its ``__cause__`` nor its
        ``__context__``; the retry warnings name the error type only.
        """
        exchange = self.config.exchange
        subject = f"ccxt exchange {exchange!r}" + (f", symbol {symbol!r}" if symbol else "")
        pacer.before_call()
        for attempt in range(self.config.max_retries + 1):
            error: SourceError | None = None
            failure = ""
            try:
                return call()
            except ccxt.NetworkError as exc:
                failure = type(exc).__name__
                if attempt == self.config.max_retries:
                    error = SourceError(
                        f"{subject}: {what} still failed after {attempt + 1} attempts ({masked_error(exc)})"
                    )
            except ccxt.BadSymbol as exc:
                error = SourceError(
                    f"{subject}: the exchange does not know this symbol while {what} "
                    f"(check sources.ccxt.symbols; {masked_error(exc)})"
                )
            except ccxt.BaseError as exc:
                error = SourceError(f"{subject}: {what} failed ({masked_error(exc)})")
            if error is not None:
                raise error
            log.warning(
                "%s: %s failed (%s), retry %d of %d", subject, what, failure, attempt + 1, self.config.max_retries
            )
            pacer.backoff(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- per symbol -----------------------------------------------------------------------------

    def _fetch_symbol(self, exchange: Any, pacer: _Pacer, symbol: str, start: dt.date, last: dt.date) -> pl.DataFrame:
        """All closed candles of ``symbol`` dated ``start..last``, deduplicated, as a bar frame.

        Pages run ``since = newest timestamp seen + 1`` until a page reaches ``last``, comes back
        empty, or brings nothing newer than ``since`` (an exchange repeating its last candle). A short
        page does not end the loop: many exchanges cap ``limit`` below what was asked.
        """
        source_file = f"ccxt://{self.config.exchange}/{symbol}"
        start_ms, last_ms = _ms(start), _ms(last)
        limit = self.config.limit_per_call
        received: list[tuple[int, int, tuple[float | None, ...]]] = []  # (source_row, ts, values)
        since = start_ms
        while True:
            page_at = f"page from {start}" if since == start_ms else f"page after {_day(since - 1)}"
            what = f"fetching {TIMEFRAME} candles for {start}..{last} ({page_at})"
            page = self._with_retries(
                pacer,
                lambda since=since: exchange.fetch_ohlcv(symbol, TIMEFRAME, since=since, limit=limit),
                what=what,
                symbol=symbol,
            )
            if not page:
                break
            newest = since - 1
            for candle in page:
                row = len(received) + 1
                ts, values = _parse_candle(candle, source_file, row)
                received.append((row, ts, values))
                newest = max(newest, ts)
            if newest < since:  # only candles already seen (or older): the exchange has nothing newer
                log.debug("%s: %s brought nothing new; stopping", source_file, page_at)
                break
            if newest >= last_ms:
                break
            since = newest + 1
        return _to_frame(received, symbol, source_file, start_ms, last_ms, today_ms=_ms(self._today()))

    def _today(self) -> dt.date:
        now = self._clock()
        if now.tzinfo is None:
            raise SourceError("CcxtSource clock must return a timezone-aware datetime")
        return now.astimezone(dt.UTC).date()


def _day(ms: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=ms // DAY_MS)


def _parse_candle(candle: Any, source_file: str, row: int) -> tuple[int, tuple[float | None, ...]]:
    """``(timestamp_ms, (open, high, low, close, volume))``; malformed or unaligned → ``SchemaError``."""
    if isinstance(candle, (str, bytes)) or not isinstance(candle, Sequence) or len(candle) < 6:
        raise SchemaError(
            source_file,
            "candle-shape",
            f"expected [timestamp_ms, open, high, low, close, volume], got {candle!r}",
            [row],
        )
    raw_ts = candle[0]
    if isinstance(raw_ts, bool) or not isinstance(raw_ts, (int, float)) or not float(raw_ts).is_integer():
        raise SchemaError(source_file, "candle-shape", f"timestamp {raw_ts!r} is not integer milliseconds", [row])
    ts = int(raw_ts)
    if ts % DAY_MS:
        stamp = dt.datetime.fromtimestamp(ts / 1000, dt.UTC).isoformat()
        raise SchemaError(
            source_file,
            "timeframe",
            f"candle at {ts} ({stamp}) does not open at 00:00 UTC; not a {TIMEFRAME} candle",
            [row],
        )
    try:
        values = tuple(None if v is None else float(v) for v in candle[1:6])
    except (TypeError, ValueError) as exc:
        raise SchemaError(source_file, "candle-shape", f"non-numeric value in candle {candle!r}", [row]) from exc
    return ts, values


def _to_frame(
    received: list[tuple[int, int, tuple[float | None, ...]]],
    symbol: str,
    source_file: str,
    start_ms: int,
    last_ms: int,
    today_ms: int,
) -> pl.DataFrame:
    """Drop still-open candles, collapse identical repeats (first receipt wins), refuse conflicting
    repeats, keep the window, sort by date."""
    kept: dict[int, tuple[int, tuple[float | None, ...]]] = {}
    for row, ts, values in received:
        if ts >= today_ms:  # still open (its values move between calls), never delivered
            continue
        if ts in kept:
            first_row, first_values = kept[ts]
            if not _same(first_values, values):
                raise SchemaError(
                    source_file,
                    "duplicate-conflict",
                    f"{symbol}: candle at {ts} ({_day(ts)}) received twice with different values "
                    f"{first_values} vs {values}",
                    [first_row, row],
                )
            continue
        kept[ts] = (row, values)
    rows = sorted((ts, row, values) for ts, (row, values) in kept.items() if start_ms <= ts <= last_ms)
    columns: dict[str, list[Any]] = {
        "date": [_day(ts) for ts, _, _ in rows],
        "symbol": [symbol] * len(rows),
        **{field: [values[i] for _, _, values in rows] for i, field in enumerate(_VALUE_FIELDS)},
        "source_file": [source_file] * len(rows),
        "source_row": [row for _, row, _ in rows],
    }
    schema = {name: BAR_SCHEMA[name] for name in columns}
    return conform_bars(pl.DataFrame(columns, schema=schema))
