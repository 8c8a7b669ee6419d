"""Ingest one date window: fetch from a source, gate on quality, quarantine, publish to the lake.

Write-audit-publish in one function: nothing reaches the lake before the whole batch has passed
the gate, so a failed batch leaves every stored partition exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mem_pipeline.core.errors import DataQualityError, SchemaError
from mem_pipeline.core.paths import Paths
from mem_pipeline.ingest import lake, quarantine
from mem_pipeline.ingest.quality.gate import GateResult, validate_batch
from mem_pipeline.ingest.quality.rules import QualityConfig
from mem_pipeline.ingest.sources.base import MarketDataSource, TruthfulSource


@dataclass(frozen=True)
class IngestResult:
    source: str
    start: dt.date
    end: dt.date
    rows_in: int
    gate: GateResult
    published: tuple[lake.PartitionWrite, ...]
    quarantine_dir: Path | None

    @property
    def rows_published(self) -> int:
        return sum(w.rows for w in self.published)

    def raise_for_gate(self) -> None:
        if not self.gate.passed:
            where = f"; rejected rows in {self.quarantine_dir}" if self.quarantine_dir else ""
            raise DataQualityError(
                f"{self.source} {self.start}..{self.end}: batch refused, nothing published{where}\n"
                + self.gate.summary()
            )


def batch_id(batch: pl.DataFrame, start: dt.date, end: dt.date) -> str:
    digest = hashlib.sha256(batch.hash_rows(seed=0).to_numpy().tobytes()).hexdigest()[:12]
    return f"{start.isoformat()}_{end.isoformat()}_{digest}"


def stored_bars_to_keep(accepted: pl.DataFrame, rejected: pl.DataFrame, root: Path) -> pl.DataFrame:
    """Stored bars this batch restates with a rejected row, on dates it rewrites: they stay as they were.

    Publishing replaces a date's partition with the batch's rows for that date. Without this, a symbol
    whose new bar was quarantined would lose its previously stored, good bar for the date.
    """
    if rejected.is_empty() or accepted.is_empty():
        return accepted.clear()
    keys = ["symbol", "date"]
    rewritten = rejected.select(keys).unique().join(accepted.select("date").unique(), on="date", how="semi")
    if rewritten.is_empty():
        return accepted.clear()
    stored = lake.read_bars(root, rewritten["date"].min(), rewritten["date"].max())
    return (
        stored.join(rewritten, on=keys, how="semi")
        .join(accepted.select(keys), on=keys, how="anti")
        .select(accepted.columns)
    )


def ingest_window(
    source: MarketDataSource, start: dt.date, end: dt.date, paths: Paths, cfg: QualityConfig
) -> IngestResult:
    """Fetch ``start..end`` from ``source`` and publish what passes; see the module docstring.

    Raises ``SchemaError`` (after copying the offending file to quarantine) when an input cannot be
    read as bars. Returns an ``IngestResult`` whose ``gate`` tells whether anything was published.
    """
    try:
        batch = source.fetch(start, end)
    except SchemaError as err:
        quarantine.quarantine_file(Path(err.source_file), str(err), paths.quarantine / source.name / "files")
        raise
    root = paths.bars(source.name)
    gate = validate_batch(batch, lake.last_bars_before(root, start), cfg)
    qdir = None
    if gate.rejected.height:
        qdir = quarantine.write_rejected_rows(
            gate.rejected,
            paths.quarantine / source.name / "rows" / batch_id(batch, start, end),
            {
                "source": source.name,
                "window": [start, end],
                "passed": gate.passed,
                "max_rejected_share": gate.max_rejected_share,
                "worst_share": gate.worst_share,
                "rules": {o.name: len(o.rows) for o in gate.outcomes},
                "summary": gate.summary(),
            },
        )
    published = ()
    if gate.passed:
        kept = stored_bars_to_keep(gate.accepted, gate.rejected, root)
        published = tuple(lake.write_partitions(pl.concat([gate.accepted, kept]), root))
    if published and isinstance(source, TruthfulSource):
        source.write_truth(paths.truth(source.name))
    return IngestResult(source.name, start, end, batch.height, gate, published, qdir)
