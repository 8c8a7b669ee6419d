"""Partitions: yearly for the history (the lake and the incremental dbt models), daily for the decision day.

A year is the unit of a history backfill: 20 years of daily bars are 20 partitions, so Dagster writes 20 events
per asset instead of 5,216. A day is the unit of work for risk limits, decisions and execution; those assets map
each day to the year that holds it (Dagster's default time-window mapping). Both calendars come from the
configured source. A history run may be narrowed to some days of its years (``HistoryWindowConfig``): the
daily loop ingests and rebuilds only the new day of the current year.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from mem_pipeline.core.params import load_params
from mem_pipeline.ingest.sources.registry import configured_source_name

# The bundled sample covers 1999-01-04 .. 2018-12-31; end dates are exclusive.
SAMPLE_CALENDAR = ("1999-01-04", "2019-01-01")


def source_calendar(source: str) -> tuple[str, str | None]:
    """(first partition, end exclusive or None for "up to today") of a source, read cheaply from params."""
    settings = (load_params().get("sources") or {}).get(source) or {}
    if source == "sample":
        return SAMPLE_CALENDAR
    if source == "synthetic":
        from mem_pipeline.ingest.sources.synthetic import SyntheticConfig

        config = SyntheticConfig.from_params(settings)
        return config.start.isoformat(), (config.end + dt.timedelta(days=1)).isoformat()
    start = settings.get("start") or "2015-01-01"
    return str(start), None


# Equity sources trade on weekdays; crypto (ccxt) and the user's own files may have any day.
WEEKENDS = ["0 0 * * 6", "0 0 * * 0"]
WEEKDAY_SOURCES = ("sample", "synthetic")


def daily_partitions(source: str | None = None) -> dg.DailyPartitionsDefinition:
    """One partition per trading day (weekdays for equity sources), so no run waits on empty weekends."""
    name = source or configured_source_name()
    start, end = source_calendar(name)
    exclusions = WEEKENDS if name in WEEKDAY_SOURCES else None
    return dg.DailyPartitionsDefinition(start_date=start, end_date=end, exclusions=exclusions)


def yearly_partitions(source: str | None = None) -> dg.TimeWindowPartitionsDefinition:
    """One partition per calendar year of the source's calendar, keyed ``YYYY``; an open calendar includes the
    current (unfinished) year, which the daily loop keeps extending."""
    start, end = source_calendar(source or configured_source_name())
    first = dt.datetime(dt.date.fromisoformat(start).year, 1, 1)
    if end is None:
        return dg.TimeWindowPartitionsDefinition(cron_schedule="0 0 1 1 *", start=first, fmt="%Y", end_offset=1)
    stop = dt.datetime((dt.date.fromisoformat(end) - dt.timedelta(days=1)).year + 1, 1, 1)
    return dg.TimeWindowPartitionsDefinition(cron_schedule="0 0 1 1 *", start=first, end=stop, fmt="%Y")


DAILY = daily_partitions()
HISTORY = yearly_partitions()


def year_key(day: dt.date | str) -> str:
    """The history partition that holds ``day``."""
    return str(day)[:4]


def window(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The run's partition window as inclusive dates (Dagster's end is exclusive)."""
    start, end = context.partition_time_window
    return start.date(), (end - dt.timedelta(days=1)).date()


class HistoryWindowConfig(dg.Config):
    """Narrow a history run to some days of its years (ISO dates, inclusive; empty: the whole partition window).

    The daily loop sets ``start`` to the new day; a backfill of a few months sets both."""

    start: str = ""
    end: str = ""


def history_window(context: dg.AssetExecutionContext, config: HistoryWindowConfig) -> tuple[dt.date, dt.date]:
    """The run's years, narrowed by ``config``; a narrowing outside the years is an error, not an empty run."""
    first, last = window(context)
    start = max(first, dt.date.fromisoformat(config.start)) if config.start else first
    end = min(last, dt.date.fromisoformat(config.end)) if config.end else last
    if start > end:
        raise dg.Failure(f"the days {config.start or first} .. {config.end or last} are outside partitions "
                         f"{first} .. {last}")  # fmt: skip
    return start, end


RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags that make one run cover the partition keys ``first .. last`` (a single-run backfill)."""
    return {RANGE_START: first, RANGE_END: last}


#: The history ops that take ``HistoryWindowConfig``.
HISTORY_OPS = ("raw_bars", "mem_dbt_history")


def history_run(start: dt.date | str, end: dt.date | str, ops: tuple[str, ...] = HISTORY_OPS, **config: object) -> dict:
    """What runs history ops ``ops`` over exactly the days ``start .. end``: the year (``partition_key``) or the
    years (range ``tags``), and ``run_config`` narrowing each op to the days (plus ``config``)."""
    first, last = year_key(start), year_key(end)
    narrow = {"config": {"start": str(start), "end": str(end), **config}}
    run = {"run_config": {"ops": dict.fromkeys(ops, narrow)}}
    if first == last:
        return run | {"partition_key": first}
    return run | {"tags": range_tags(first, last)}
