"""500 parent orders of one decision → all 2,500 child orders at the paper broker (target < 1 s, domain time).

Usage: python -m bench.bench_execution [repeats] [sqlite,postgresql]

Each repeat starts from an empty ledger and paper broker (SQLite files in a throw-away folder) and times
``execute`` end to end: reconcile, gate, schedule (TWAP/VWAP/Almgren–Chriss, 5 slices), the ledger write
before sending and 2,500 submissions with their acknowledgements booked. The baseline is the same path
with one ledger transaction per parent and per broker reply instead of batched writes. Also reported: the
latency from the decision frame to the last child accepted by the broker, and a duplicate tick (the same
decision again: reconcile 2,500 live orders, send nothing). Backends alternate within each repeat: SQLite
(a file) and PostgreSQL (a fresh database per run on a throw-away local server, ``tests/postgres_server.py``,
or ``MEM_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from bench.harness import Timing, report
from mem_pipeline.core.orders import ORDER_SCHEMA
from mem_pipeline.execution.breaker import CircuitBreaker
from mem_pipeline.execution.brokers.paper import PaperBroker
from mem_pipeline.execution.engine import ExecutionResult, execute
from mem_pipeline.execution.gate import GateConfig, PreTradeGate
from mem_pipeline.execution.ledger import Ledger

N_PARENTS, N_SLICES = 500, 5
GATE = GateConfig(max_order_notional=1e6, max_position_notional=1e6, max_gross_exposure=1e9)


def decision(n: int = N_PARENTS) -> pl.DataFrame:
    schedules = ("twap", "vwap", "almgren_chriss")
    rows = [
        {
            "decision_version": "bench-v1",
            "decision_date": dt.date(2024, 1, 2),
            "symbol": f"SYN{i:03d}",
            "side": "buy" if i % 2 else "sell",
            "quantity": float(100 + i),
            "lot_size": 1.0,
            "reference_price": 50.0,
            "notional": 50.0 * (100 + i),
            "current_position": 0.0,
            "target_position": float(100 + i),
            "expected_cost_bps": 6.0,
            "schedule": schedules[i % 3],
            "n_slices": N_SLICES,
            "binding_limit": "kelly",
        }
        for i in range(n)
    ]
    return pl.DataFrame(rows, schema=ORDER_SCHEMA)


CPU: dict[tuple[str, bool], list[float]] = {}  # process CPU seconds of the first execute


def one_run(url: str, root: Path, batched: bool, backend: str) -> tuple[ExecutionResult, ExecutionResult]:
    ledger = Ledger.open(url)
    broker = PaperBroker(root / "paper")
    frame = decision()
    cpu = time.process_time()
    first = execute(frame, ledger, broker, PreTradeGate(GATE), CircuitBreaker(), batched=batched)
    CPU.setdefault((backend, batched), []).append(time.process_time() - cpu)
    assert first.submitted == N_PARENTS * N_SLICES and not first.pending, first.summary()
    again = execute(frame, ledger, broker, PreTradeGate(GATE), CircuitBreaker(), batched=batched)
    assert again.submitted == 0 and broker.duplicate_attempts == 0
    ledger.close()
    broker.close()
    return first, again


def main(repeats: int = 5, backends: tuple[str, ...] = ("sqlite", "postgresql")) -> None:
    samples: dict[tuple[str, str], list[ExecutionResult]] = {}
    server = None
    if "postgresql" in backends:
        from tests.postgres_server import PostgresServer

        server = PostgresServer.start()
    try:
        with tempfile.TemporaryDirectory(prefix="mem-bench-exec-") as tmp:
            for r in range(repeats):
                for backend in backends:
                    for batched in (True, False):
                        root = Path(tmp) / f"{r}-{backend}-{batched}"
                        url = f"sqlite:///{root / 'ledger.sqlite'}" if backend == "sqlite" else server.new_database()
                        first, again = one_run(url, root, batched, backend)
                        samples.setdefault((backend, "batched" if batched else "baseline"), []).append(first)
                        if batched:
                            samples.setdefault((backend, "tick"), []).append(again)
    finally:
        if server is not None:
            server.stop()

    def med(results: list[ExecutionResult], key: str) -> float:
        return statistics.median(x.timings[key] if key != "latency" else (x.latency_s or 0.0) for x in results)

    n = N_PARENTS * N_SLICES
    for backend in backends:
        b = samples[(backend, "batched")]
        phases = ", ".join(
            f"{k.removesuffix('_s')} {med(b, k) * 1000:.0f} ms"
            for k in ("reconcile_s", "gate_and_plan_s", "ledger_write_s", "send_s")
        )
        base = f"{backend} baseline: a transaction per parent and per reply"
        report(
            f"Execution on {backend}: {N_PARENTS} parents → {n} child orders at the paper broker (domain time)",
            [
                Timing(
                    base,
                    med(samples[(backend, "baseline")], "total_s"),
                    repeats,
                    f"CPU {statistics.median(CPU[(backend, False)]):.3f} s",
                ),
                Timing(
                    f"{backend} execute (batched ledger writes)",
                    med(b, "total_s"),
                    repeats,
                    f"target < 1 s; CPU {statistics.median(CPU[(backend, True)]):.3f} s; {phases}",
                ),
            ],
            baseline=base,
        )
        report(
            f"Execution latency on {backend}",
            [
                Timing("decision frame → last child accepted by the broker", med(b, "latency"), repeats),
                Timing(
                    f"duplicate tick: reconcile {n:,} live orders, send none",
                    med(samples[(backend, "tick")], "total_s"),
                    repeats,
                ),
            ],
        )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 5,
        tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else ("sqlite", "postgresql"),
    )
