"""Prometheus metrics of a running MEM (``prometheus_client``), computed at each scrape from the ledger, the
decision store, the lake and the Dagster instance: ``mem metrics`` serves them on 127.0.0.1.

- ``mem_child_orders{state}``: child orders in the ledger by state;
- ``mem_parent_rejections{limit}``: parent orders the pre-trade gate rejected, by the limit that refused them;
- ``mem_position_units{symbol}``, ``mem_gross_exposure`` and ``mem_net_exposure`` (positions at each symbol's
  latest reference price in the ledger, account currency);
- ``mem_latest_decision_age_seconds``: since the newest stored decision was written;
- ``mem_data_freshness_days{source}``: days from the lake's last bar date to today;
- ``mem_drawdown`` and ``mem_kill_switch``: the newest decision day's drawdown from the equity peak and
  whether the drawdown kill switch is on (``data/risk/<day>/limits.json``);
- ``mem_circuit_breaker{state}``: 1 for the state the last execution run left its broker's circuit breaker in
  (closed, open, half_open), from that run's ``executed_orders`` metadata;
- ``mem_last_run_duration_seconds{job}`` and ``mem_last_run_success{job}``: each job's latest finished run.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import polars as pl
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mem_pipeline.core.paths import Paths
from mem_pipeline.execution.breaker import BreakerState
from mem_pipeline.execution.runtime import open_ledger
from mem_pipeline.ingest import lake

BREAKER_STATES = tuple(state.value for state in BreakerState)


class MemCollector(Collector):
    """Reads everything afresh at each scrape (so a scrape is the state at that moment)."""

    def __init__(self, paths: Paths, source: str, instance: Any | None = None) -> None:
        self.paths, self.source, self.instance = paths, source, instance

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._ledger()
        age = GaugeMetricFamily("mem_latest_decision_age_seconds", "Seconds since the newest decision was stored")
        stored = list(self.paths.decisions.glob("*/*.parquet")) if self.paths.decisions.exists() else []
        if stored:
            age.add_metric([], time.time() - max(p.stat().st_mtime for p in stored))
        yield age
        fresh = GaugeMetricFamily(
            "mem_data_freshness_days", "Days from the last bar in the lake to today", labels=["source"]
        )
        last = lake.last_date(self.paths.bars(self.source))
        if last is not None:
            fresh.add_metric([self.source], (dt.date.today() - last).days)
        yield fresh
        yield from self._risk()
        if self.instance is not None:
            yield from self._breaker()
            yield from self._runs()

    def _risk(self) -> Iterator[GaugeMetricFamily]:
        drawdown = GaugeMetricFamily("mem_drawdown", "Drawdown from the equity peak on the newest decision day")
        killed = GaugeMetricFamily("mem_kill_switch", "1 if the drawdown kill switch is on (newest decision day)")
        days = sorted(self.paths.risk.glob("*/limits.json")) if self.paths.risk.exists() else []
        if days:
            limits = json.loads(days[-1].read_text(encoding="utf-8"))
            drawdown.add_metric([], float(limits["drawdown"]))
            killed.add_metric([], 1.0 if limits["kill_switch"] else 0.0)
        yield drawdown
        yield killed

    def _breaker(self) -> Iterator[GaugeMetricFamily]:
        import dagster as dg

        breaker = GaugeMetricFamily(
            "mem_circuit_breaker", "1 for the state the last execution run left the breaker in", labels=["state"]
        )
        event = self.instance.get_latest_materialization_event(dg.AssetKey("executed_orders"))
        summary = event.asset_materialization.metadata.get("summary") if event else None
        if summary is not None:
            state = summary.value["breaker"]["state"]
            for name in BREAKER_STATES:
                breaker.add_metric([name], 1.0 if name == state else 0.0)
        yield breaker

    def _ledger(self) -> Iterator[GaugeMetricFamily]:
        ledger = open_ledger(self.paths)
        try:
            children, parents, positions = ledger.orders_frame(), ledger.parents_frame(), ledger.positions()
        finally:
            ledger.close()
        states = GaugeMetricFamily("mem_child_orders", "Child orders in the ledger by state", labels=["state"])
        if children.height:
            for state, n in children.group_by("state").len().sort("state").iter_rows():
                states.add_metric([state], n)
        yield states
        rejected = GaugeMetricFamily("mem_parent_rejections", "Parents the gate rejected, by limit", labels=["limit"])
        if parents.height:
            by_limit = (
                parents.filter(pl.col("status") == "rejected").group_by("reject_limit").len().sort("reject_limit")
            )
            for limit, n in by_limit.iter_rows():
                rejected.add_metric([str(limit)], n)
        yield rejected
        units = GaugeMetricFamily("mem_position_units", "Signed units held per symbol", labels=["symbol"])
        gross = net = 0.0
        prices: dict[str, float] = {}
        if parents.height:
            latest = parents.sort("created_at").group_by("symbol").last()
            prices = dict(latest.select("symbol", "reference_price").iter_rows())
        for symbol, quantity in positions.iter_rows():
            units.add_metric([symbol], quantity)
            notional = quantity * prices.get(symbol, 0.0)
            gross, net = gross + abs(notional), net + notional
        yield units
        yield GaugeMetricFamily("mem_gross_exposure", "Sum of |position x latest reference price|", value=gross)
        yield GaugeMetricFamily("mem_net_exposure", "Sum of position x latest reference price", value=net)

    def _runs(self) -> Iterator[GaugeMetricFamily]:
        import dagster as dg

        duration = GaugeMetricFamily(
            "mem_last_run_duration_seconds", "The latest finished run's wall time", labels=["job"]
        )
        success = GaugeMetricFamily("mem_last_run_success", "1 if the latest finished run succeeded", labels=["job"])
        done = dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE])
        seen: set[str] = set()
        for record in self.instance.get_run_records(filters=done, limit=200):
            job = record.dagster_run.job_name
            if job in seen or record.start_time is None or record.end_time is None:
                continue
            seen.add(job)
            duration.add_metric([job], record.end_time - record.start_time)
            success.add_metric([job], 1.0 if record.dagster_run.status == dg.DagsterRunStatus.SUCCESS else 0.0)
        yield duration
        yield success


def serve(paths: Paths, source: str, port: int, instance: Any | None = None) -> tuple[Any, CollectorRegistry]:
    """Serve the metrics on 127.0.0.1:``port`` (0: any free port) in a background thread; returns the server
    (``server.server_port``, ``server.shutdown()``) and its registry."""
    registry = CollectorRegistry()
    registry.register(MemCollector(paths, source, instance))
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server, registry
