"""Everything one execution run needs, built from the ``execution`` section of params.yaml.

``ExecutionRuntime.build(config, paths)`` opens the ledger (``config.engine.ledger_url`` or SQLite under
``paths.ledger``), the broker (paper state under ``paths.ledger / "paper"``; ccxt with credentials from the
environment), the gate and a fresh circuit breaker; ``run(orders, ...)`` is ``execute`` with the config's
engine settings. The Dagster job builds one per run (the breaker lives as long as the run).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from mem_pipeline.core.params import section
from mem_pipeline.core.paths import Paths
from mem_pipeline.execution.breaker import CircuitBreaker
from mem_pipeline.execution.brokers.base import Broker
from mem_pipeline.execution.brokers.ccxt_broker import CcxtBroker
from mem_pipeline.execution.brokers.paper import PaperBroker
from mem_pipeline.execution.engine import ExecutionConfig, ExecutionResult, execute
from mem_pipeline.execution.gate import PreTradeGate
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.risk.limits import RiskLimits

PAPER_DIR = "paper"


def open_ledger(paths: Paths, config: ExecutionConfig | None = None) -> Ledger:
    """The execution ledger configured in params.yaml (``execution.ledger_url``, else SQLite under ``paths``)."""
    config = config or ExecutionConfig.from_params(section("execution"))
    return Ledger.open(config.engine.ledger_url or None, paths=paths)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ExecutionRuntime:
    config: ExecutionConfig
    ledger: Ledger
    broker: Broker
    gate: PreTradeGate
    breaker: CircuitBreaker

    @classmethod
    def build(
        cls,
        config: ExecutionConfig | None = None,
        paths: Paths | None = None,
        *,
        exchange: Any | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
        limits: RiskLimits | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> ExecutionRuntime:
        """``config`` defaults to params.yaml's ``execution``; ``exchange`` injects a ccxt stand-in (tests);
        ``limits``: the decision's stored risk limits, which set the gate's (``GateLimits``); ``credentials``:
        the ccxt broker's (default: the environment's)."""
        config = config or ExecutionConfig.from_params(section("execution"))
        paths = paths or Paths.from_env()
        ledger = Ledger.open(config.engine.ledger_url or None, paths=paths, clock=clock)
        broker: Broker
        if config.engine.broker == "paper":
            broker = PaperBroker(paths.ledger / PAPER_DIR, config.paper)
        else:
            broker = CcxtBroker(config.ccxt, exchange, credentials)
        return cls(config, ledger, broker, PreTradeGate(config.gate, limits), CircuitBreaker(config.breaker, clock))

    def run(
        self, orders: pl.DataFrame, *, last_prices: Mapping[str, float] | None = None, **kw: Any
    ) -> ExecutionResult:
        e = self.config.engine
        kw.setdefault("flush_every", e.flush_every)
        kw.setdefault("retries", e.retries)
        kw.setdefault("retry_delay_seconds", e.retry_delay_seconds)
        kw.setdefault("lock_ttl_seconds", e.lock_ttl_seconds)
        kw.setdefault("child_ttl_seconds", e.child_ttl_seconds)
        kw.setdefault("schedule", self.config.schedule)
        kw.setdefault("one_version_per_day", True)
        return execute(orders, self.ledger, self.broker, self.gate, self.breaker, last_prices=last_prices, **kw)

    def close(self) -> None:
        self.ledger.close()
        close = getattr(self.broker, "close", None)
        if close is not None:
            close()
