"""Append-only decision store: ``<root>/<date>/<version>.parquet`` (the orders, ``ORDER_SCHEMA``) beside
``<version>.json`` (manifest, limits, risk report and per-symbol targets).

Files are created with a hard link from a staged copy, which fails if the name exists: nothing is ever
overwritten, even by two writers racing. Writing a version again leaves its files alone when the bytes are
identical and is an error when they differ (the same inputs must give the same decision). ``index.jsonl``
records the order in which versions were first indexed (``latest``; the ``new_decisions`` sensor reads it);
nothing is ever deleted. Every write ends by appending the version's line unless the index has it, checked and
appended under an exclusive ``flock`` on the index: a write that died between its files and its line is
completed by running it again, and no version is ever listed twice, whatever the writers race.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from mem_pipeline.core.files import atomic_write_parquet, file_sha256
from mem_pipeline.core.orders import ORDER_SCHEMA
from mem_pipeline.decisions.types import TARGET_SCHEMA, DecisionError, TradeDecision
from mem_pipeline.decisions.version import VERSION_LENGTH
from mem_pipeline.risk.limits import RiskLimits

INDEX = "index.jsonl"


def _sidecar(decision: TradeDecision) -> bytes:
    targets = {name: decision.targets[name].to_list() for name in decision.targets.columns}
    payload = {
        "version": decision.version,
        "decision_date": decision.decision_date.isoformat(),
        "manifest": decision.manifest,
        "limits": decision.limits.to_dict(),
        "report": decision.report,
        "targets": targets,
    }
    return (json.dumps(payload, sort_keys=True, indent=1, allow_nan=False, default=str) + "\n").encode()


class DecisionStore:
    """Decisions under ``root`` (``Paths.decisions``), append-only."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, decision_date: dt.date, version: str) -> Path:
        return self.root / decision_date.isoformat() / f"{version}.parquet"

    def write(self, decision: TradeDecision) -> Path:
        """Store ``decision``; return its parquet path. Identical rewrite: the files are kept and the index line
        appended if missing (completing a crashed write); different bytes: ``DecisionError``."""
        target = self.path(decision.decision_date, decision.version)
        folder = target.parent
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        try:
            staged_json = staging / "decision.json"
            staged_json.write_bytes(_sidecar(decision))
            staged_parquet = staging / "orders.parquet"
            atomic_write_parquet(decision.orders, staged_parquet)
            self._link(staged_json, target.with_suffix(".json"), decision.version)
            self._link(staged_parquet, target, decision.version)
        finally:
            for leftover in staging.iterdir():
                leftover.unlink()
            staging.rmdir()
        self._index(decision.decision_date.isoformat(), decision.version)
        return target

    def _index(self, day: str, version: str) -> None:
        """Append ``version``'s line to the index unless it is there: check and append under an exclusive lock
        on the index (``flock``, released on close), so racing writers add it once; fsync'd before unlocking."""
        fd = os.open(self.root / INDEX, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        with os.fdopen(fd, "r+b") as index:
            fcntl.flock(index.fileno(), fcntl.LOCK_EX)
            index.seek(0)
            text = index.read().decode("utf-8")
            if self._indexed(text, day, version):
                return
            line = json.dumps({"date": day, "version": version}) + "\n"
            if text and not text.endswith("\n"):  # a torn last line: keep ours on a line of its own
                line = "\n" + line
            index.write(line.encode())
            index.flush()
            os.fsync(index.fileno())

    @staticmethod
    def _indexed(text: str, day: str, version: str) -> bool:
        """Whether the index ``text`` has a line for ``version`` of ``day`` (unreadable lines are skipped)."""
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("date") == day and entry.get("version") == version:
                return True
        return False

    @staticmethod
    def _link(staged: Path, final: Path, version: str) -> bool:
        """Create ``final`` from ``staged`` unless it exists; True if created. Conflicting bytes raise."""
        try:
            os.link(staged, final)
            return True
        except FileExistsError:
            if file_sha256(final) != file_sha256(staged):
                raise DecisionError(
                    f"decision store: {final} already holds different content for version {version}; "
                    "a version names one decision, which is never overwritten (same inputs must give "
                    "the same decision: check for non-determinism or an input missing from the version)"
                ) from None
            return False

    # ---- reading ------------------------------------------------------------------------------

    def _find(self, version: str) -> Path:
        if len(version) != VERSION_LENGTH or not version.isalnum():
            raise DecisionError(f"decision store: {version!r} is not a decision version")
        found = sorted(self.root.glob(f"*/{version}.parquet"))
        if not found:
            raise DecisionError(f"decision store: no decision {version} under {self.root}")
        return found[0]

    def read_orders(self, version: str) -> pl.DataFrame:
        return pl.read_parquet(self._find(version))

    def read(self, version: str) -> TradeDecision:
        path = self._find(version)
        meta: dict[str, Any] = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        return TradeDecision(
            version=meta["version"],
            decision_date=dt.date.fromisoformat(meta["decision_date"]),
            orders=pl.read_parquet(path).cast(ORDER_SCHEMA),  # type: ignore[arg-type]
            targets=pl.DataFrame(meta["targets"], schema=TARGET_SCHEMA),
            limits=RiskLimits(**meta["limits"]),
            report=meta["report"],
            manifest=meta["manifest"],
        )

    def versions(self, decision_date: dt.date) -> list[str]:
        """Versions of a date in the order they were first written (versions on disk but missing from
        the index, after a crash between link and index, come last, by name)."""
        day = decision_date.isoformat()
        ordered: list[str] = []
        index = self.root / INDEX
        if index.exists():
            for line in index.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                entry = json.loads(line)
                if entry["date"] == day and entry["version"] not in ordered:
                    ordered.append(entry["version"])
        on_disk = sorted(p.stem for p in (self.root / day).glob("*.parquet"))
        return [v for v in ordered if v in on_disk] + [v for v in on_disk if v not in ordered]

    def latest(self, decision_date: dt.date) -> str | None:
        versions = self.versions(decision_date)
        return versions[-1] if versions else None
