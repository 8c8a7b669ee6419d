"""Daily partitions over the configured source's calendar."""

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


DAILY = daily_partitions()


def window(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The run's partition window as inclusive dates (Dagster's end is exclusive)."""
    start, end = context.partition_time_window
    return start.date(), (end - dt.timedelta(days=1)).date()
