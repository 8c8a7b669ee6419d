"""A throw-away PostgreSQL server on 127.0.0.1 for the ledger tests, from Debian's ``postgresql`` binaries.

``MEM_TEST_POSTGRES_URL`` (a server URL whose user may create databases) is used when set; otherwise a server
is initialised in a temp folder and started on a free port (as the ``postgres`` user when running as root, since
PostgreSQL refuses root), and stopped at the end. ``MEM_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) turns "no
PostgreSQL here" into a failure instead of a skip, so CI cannot pass without the second backend.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa

USER = "mem"


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, admin_url: str, folder: Path | None = None, binaries: Path | None = None) -> None:
        self.admin_url = admin_url  # postgresql+psycopg://user@host:port/postgres
        self.folder = folder
        self.binaries = binaries
        self._engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")

    @classmethod
    def available(cls) -> bool:
        return bool(os.environ.get("MEM_TEST_POSTGRES_URL")) or _binaries() is not None

    @classmethod
    def start(cls) -> PostgresServer:
        url = os.environ.get("MEM_TEST_POSTGRES_URL")
        if url:
            return cls(url)
        binaries = _binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql (apt-get install postgresql)")
        folder = Path(tempfile.mkdtemp(prefix="mem-pg-"))
        port = _free_port()
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_postgres:
            shutil.chown(folder, "postgres")
        data, log = folder / "data", folder / "log"
        subprocess.run(
            [*as_postgres, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", USER],
            check=True,
            capture_output=True,
        )
        options = f"-k {folder} -h 127.0.0.1 -p {port} -c fsync=off -c max_connections=200"
        subprocess.run(
            [*as_postgres, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"],
            check=True,
            capture_output=True,
        )
        return cls(f"postgresql+psycopg://{USER}@127.0.0.1:{port}/postgres", folder, binaries)

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = "t" + uuid.uuid4().hex[:16]
        with self._engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # a generated identifier, not input
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        self._engine.dispose()
        if self.folder is None or self.binaries is None:
            return
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*as_postgres, str(self.binaries / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.folder, ignore_errors=True)
