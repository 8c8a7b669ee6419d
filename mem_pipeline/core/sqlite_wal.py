"""WAL mode for a SQLite file that several processes may open at once (the ledger, the paper exchange)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def enable_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Switch to WAL (persistent, once per file). On a brand-new file another process may be switching too:
    SQLite then answers "database is locked" without waiting on the busy timeout, so retry until it passes.
    ``cursor``: a DB-API cursor or a ``sqlite3.Connection`` (anything with ``execute``)."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
