"""At least 200 randomized multi-process fault scenarios per ledger backend (SQLite, PostgreSQL): two or three
executor processes race on one decision and one ledger while the broker loses acks, times out and rejects and
the executors die between steps. Afterwards: 0 duplicate submits, 0 lost orders, ledger = broker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from execution_fault_races import fault_worker
from execution_procs import run_processes

SCENARIOS = 210
WORKERS = 3


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` (a file per scenario) or a fresh PostgreSQL database holding one schema per scenario."""
    if request.param == "sqlite":
        return "sqlite"
    url = request.getfixturevalue("postgres").new_database()
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for seed in range(SCENARIOS):
            conn.execute(sa.text(f"CREATE SCHEMA s{seed}"))  # generated names, not input
    engine.dispose()
    return url


def test_racing_faulty_executor_processes_never_duplicate_or_lose_an_order(tmp_path: Path, backend_url: str) -> None:
    seeds = list(range(SCENARIOS))
    t0 = time.perf_counter()
    results = run_processes(
        fault_worker, [(w, WORKERS, seeds, backend_url, str(tmp_path)) for w in range(WORKERS)], timeout=900
    )
    errors = [r for status, r in results if status == "error"]
    crashes = [f.read_text() for f in tmp_path.glob("worker-*.faulthandler") if f.stat().st_size]
    assert not errors and not crashes, "\n\n".join(errors + crashes)
    assert all(status == "ok" for status, _ in results), results
    totals = {k: sum(r[k] for _, r in results) for k in results[0][1]}
    print(f"multi-process fault suite ({backend_url.split(':')[0]}): {totals} in {time.perf_counter() - t0:.1f} s")
    assert totals["scenarios"] == SCENARIOS
    assert totals["crashes"] >= 50 and totals["orders"] >= 500 and totals["filled"] > 0
