"""Every location MEM reads or writes, resolved once.

``MEM_HOME`` overrides the project root and ``MEM_DATA_DIR`` the data folder; tests and
alternative deployments build a ``Paths`` of their own instead of patching globals.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

#: The checkout (``mem_pipeline/core/paths.py`` is two packages below it).
PROJECT_ROOT = Path(os.environ.get("MEM_HOME") or Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class Paths:
    data: Path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(data=Path(os.environ.get("MEM_DATA_DIR") or PROJECT_ROOT / "data").resolve())

    @property
    def raw(self) -> Path:
        return self.data / "raw"

    def bars(self, source: str) -> Path:
        """Hive-partitioned lake of one source: ``raw/<source>/bars/date=YYYY-MM-DD/part.parquet``."""
        return self.raw / source / "bars"

    def truth(self, source: str) -> Path:
        """Ground truth a synthetic source saves beside its bars."""
        return self.raw / source / "truth"

    @property
    def quarantine(self) -> Path:
        return self.data / "quarantine"

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse"

    @property
    def models(self) -> Path:
        return self.data / "models"

    @property
    def forecasts(self) -> Path:
        return self.data / "forecasts"

    @property
    def memory(self) -> Path:
        return self.data / "memory"

    @property
    def risk(self) -> Path:
        return self.data / "risk"

    def risk_day(self, day: dt.date) -> Path:
        """A decision day's stored risk assessment (``limits.json``, ``symbols.parquet``) and ``inputs/``."""
        return self.risk / day.isoformat()

    @property
    def decisions(self) -> Path:
        return self.data / "decisions"

    @property
    def ledger(self) -> Path:
        return self.data / "ledger"

    @property
    def backtest(self) -> Path:
        return self.data / "backtest"

    @property
    def reports(self) -> Path:
        return self.data / "reports"


PARAMS_FILE = Path(os.environ.get("MEM_PARAMS") or PROJECT_ROOT / "params.yaml")
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
