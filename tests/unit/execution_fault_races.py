"""The randomized multi-process fault scenarios: two or three executor processes race on one decision, one
ledger and one paper exchange, behind a faulty broker (lost acks, timeouts, rejects), dying between steps and
ticking twice; a clean run then checks the invariants (no duplicate submit, nothing lost, ledger = broker).

Long-lived worker processes play every scenario (a spawned process costs a second of imports); a file barrier
starts each scenario's executors together. Each scenario has its own ledger: a SQLite file, or a schema of one
PostgreSQL database (``search_path``)."""

from __future__ import annotations

import datetime as dt
import faulthandler
import functools
import os
import random
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl
from execution_procs import LOOSE, SUBMITS_FILE, CountingBroker, submit_counts, when_free
from execution_support import DECISION_DATE, assert_exactly_once, bars, random_decisions, random_fault_rates

from mem_pipeline.execution.breaker import BreakerConfig, CircuitBreaker
from mem_pipeline.execution.brokers.faults import FaultRates, FaultyBroker
from mem_pipeline.execution.brokers.paper import PaperBroker, PaperConfig
from mem_pipeline.execution.engine import execute
from mem_pipeline.execution.errors import SimulatedCrash
from mem_pipeline.execution.gate import PreTradeGate
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.execution.reconcile import reconcile

ABORT = "abort"


def scenario_url(backend_url: str, root: Path, seed: int) -> str:
    """The ledger of scenario ``seed``: ``root/s<seed>/ledger.sqlite`` for ``backend_url == "sqlite"``, else
    the schema ``s<seed>`` of the PostgreSQL database ``backend_url`` (created beforehand)."""
    if backend_url == "sqlite":
        return f"sqlite:///{root / f's{seed}' / 'ledger.sqlite'}"
    return f"{backend_url}?options={quote(f'-csearch_path=s{seed}')}"


@dataclass(frozen=True)
class Plan:
    """One scenario: its decision frames, fault rates and how many executors race."""

    seed: int
    frames: tuple[pl.DataFrame, ...]
    rates: FaultRates
    executors: int


def plan(seed: int) -> Plan:
    rng = random.Random(seed)
    frames = random_decisions(rng, f"mp{seed}", max_symbols=4, max_slices=4)
    return Plan(seed, tuple(frames), random_fault_rates(rng, top=0.7), rng.choice([2, 3]))


def _market(p: Plan) -> pl.DataFrame:
    symbols = p.frames[0]["symbol"].to_list()
    return bars(symbols, start=DECISION_DATE - dt.timedelta(days=25), n_days=30, seed=p.seed)


def run_executor(p: Plan, worker: int, url: str, root: Path) -> dict[str, int]:
    """One executor process's part of a scenario: 1-3 lifetimes, each may die at a random step; faulty
    broker, duplicate ticks, paper fills booked under the run lock between lifetimes."""
    from mem_pipeline.execution.fills import book_fills

    rng = random.Random(p.seed * 7919 + worker)
    stats = {"runs": 0, "crashes": 0, "busy": 0}
    for attempt in range(rng.randint(1, 3)):
        ledger = Ledger.open(url)
        paper = PaperBroker(root / "paper", PaperConfig(participation_cap=0.004))
        counting = CountingBroker(paper, root / SUBMITS_FILE)
        broker = FaultyBroker(counting, p.rates, seed=p.seed * 1000 + worker * 10 + attempt)
        breaker = CircuitBreaker(BreakerConfig(failures=rng.randint(1, 4), cooldown_seconds=0))
        crash_at = rng.randint(1, 30) if rng.random() < 0.6 else None
        steps = [0]

        def hook(step: str, crash_at: int | None = crash_at, steps: list[int] = steps) -> None:
            steps[0] += 1
            if crash_at is not None and steps[0] == crash_at:
                raise SimulatedCrash(step)

        owner = f"w{worker}-{attempt}-{os.getpid()}"
        try:
            for frame in p.frames:
                for _ in range(rng.choice([1, 1, 2])):  # duplicate sensor ticks
                    action = functools.partial(
                        execute, frame, ledger, broker, PreTradeGate(LOOSE), breaker, crash_hook=hook, lock_owner=owner
                    )
                    done = when_free(action)
                    stats["runs" if done is not None else "busy"] += 1
        except SimulatedCrash:
            stats["crashes"] += 1
        if rng.random() < 0.4:  # the market moves on: paper fills, booked under the lock
            day = DECISION_DATE + dt.timedelta(days=attempt + 1)
            when_free(functools.partial(book_fills, ledger, paper, _market(p).filter(pl.col("date") <= day)))
        counting.close()
        paper.close()
        ledger.close()
    return stats


def check_scenario(p: Plan, url: str, root: Path) -> dict[str, int]:
    """A clean final run of every decision, then the invariants: no duplicate submit, nothing lost,
    ledger = broker (states, fills, positions). Returns counts for the report."""
    ledger, paper = Ledger.open(url), PaperBroker(root / "paper", PaperConfig(participation_cap=0.004))
    counting = CountingBroker(paper, root / SUBMITS_FILE)
    for frame in p.frames:
        execute(frame, ledger, counting, PreTradeGate(LOOSE), CircuitBreaker())
    reconcile(ledger, paper)
    counts = submit_counts(root / SUBMITS_FILE)
    assert max(counts.values(), default=0) <= 1, (p.seed, {k: v for k, v in counts.items() if v > 1})
    assert {r.client_id for r in paper.orders()} <= set(counts), p.seed  # all came through a counted submit
    out = {
        "orders": assert_exactly_once(p.seed, p.frames, ledger, paper),
        "filled": sum(1 for r in paper.orders() if r.filled_quantity > 0),
    }
    counting.close()
    paper.close()
    ledger.close()
    return out


class PeerFailed(Exception):
    """Another worker failed (its error is its own report): stop waiting for it."""


def rendezvous(folder: Path, worker: int, parties: int, abort: Path, timeout_s: float = 300.0) -> None:
    """Wait until ``parties`` workers have arrived at ``folder`` (a file each), or until ``abort`` exists (a
    worker failed and said so): a barrier with no shared state that could break."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"arrived-{worker}").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(folder.glob("arrived-*"))) < parties:
        if abort.exists():
            raise PeerFailed(abort.read_text())
        if time.monotonic() > deadline:
            raise TimeoutError(f"{folder}: only {len(list(folder.glob('arrived-*')))} of {parties} arrived")
        time.sleep(0.005)


def fault_worker(worker: int, n_workers: int, seeds: list[int], backend_url: str, root: str, out: Any) -> None:
    """One of ``n_workers`` long-lived processes: for each scenario, start together with the others (barrier)
    and play executor ``worker`` if the scenario has that many; then check a share of the scenarios."""
    totals = {"scenarios": 0, "executors": 0, "runs": 0, "crashes": 0, "busy": 0, "orders": 0, "filled": 0}
    base = Path(root)
    crash_log = (base / f"worker-{worker}.faulthandler").open("w")  # a hard crash leaves its stack here
    faulthandler.enable(file=crash_log, all_threads=True)
    try:
        for seed in seeds:
            p = plan(seed)
            rendezvous(base / "sync" / str(seed), worker, n_workers, base / ABORT)
            if worker < p.executors:
                stats = run_executor(p, worker, scenario_url(backend_url, base, seed), base / f"s{seed}")
                totals["executors"] += 1
                for key in ("runs", "crashes", "busy"):
                    totals[key] += stats[key]
        rendezvous(base / "sync" / "checks", worker, n_workers, base / ABORT)
        for seed in seeds[worker::n_workers]:
            checked = check_scenario(plan(seed), scenario_url(backend_url, base, seed), base / f"s{seed}")
            totals["scenarios"] += 1
            totals["orders"] += checked["orders"]
            totals["filled"] += checked["filled"]
        out.put(("ok", totals))
    except PeerFailed:
        out.put(("stopped", f"worker {worker}: stopped, another worker failed"))
    except BaseException as exc:  # noqa: BLE001 - reported to the test process
        (base / ABORT).write_text(f"worker {worker}")
        out.put(("error", f"worker {worker}: " + "".join(traceback.format_exception(exc))[-6000:]))
