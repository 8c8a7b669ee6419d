"""Ledger backends for the execution tests: every test asking for ``ledger_urls`` runs on SQLite and on a real
PostgreSQL server (``tests/postgres_server.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.postgres_server import PostgresServer

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if not PostgresServer.available():
        if os.environ.get("MEM_REQUIRE_POSTGRES") == "1":
            pytest.fail("MEM_REQUIRE_POSTGRES=1 but PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql; .ci/run installs it)")
    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def ledger_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """``urls(name)``: the URL of the test's ledger ``name`` on this backend (the same name, the same ledger)."""
    made: dict[str, str] = {}

    def url(name: str = "ledger") -> str:
        if name not in made:
            if request.param == "sqlite":
                made[name] = f"sqlite:///{tmp_path / name / 'ledger.sqlite'}"
            else:
                made[name] = request.getfixturevalue("postgres").new_database()
        return made[name]

    return url
