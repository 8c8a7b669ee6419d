"""Ingest one date window: fetch from a source, gate on quality, quarantine, publish to the lake.

Write-audit-publish in one function: nothing reaches the lake before the whole batch has passed
the gate, so a failed batch leaves every stored partition exactly as it was.

A whole-file source (``files``) is validated whole: rows outside the window are checked, and if
valid counted (``rows_outside_window``), never published by this run. Publishing never shrinks a
stored partition unless the run restates: a stored bar whose (symbol, date) the batch does not
replace is kept (``stored_kept``); ``restate=True`` replaces whole dates (``stored_dropped``).
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
from mem_pipeline.ingest.quality.rules import QualityConfig, rows_out_of_order
from mem_pipeline.ingest.sources.base import MarketDataSource, TruthfulSource, WholeFileSource


@dataclass(frozen=True)
class IngestResult:
    source: str
    start: dt.date
    end: dt.date
    rows_in: int
    gate: GateResult
    published: tuple[lake.PartitionWrite, ...]
    quarantine_dir: Path | None
    rows_outside_window: int = 0  # valid rows dated outside start..end: validated, not published by this run
    rows_out_of_order: int = 0  # rows dated before an earlier row of their symbol in their file (sorted, kept)
    stored_kept: int = 0  # stored bars on the dates written that the batch did not replace: kept
    stored_dropped: int = 0  # stored bars removed because the run restated their date
    restate: bool = False

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


def stored_bars_to_keep(
    accepted: pl.DataFrame, rejected: pl.DataFrame, root: Path, *, restate: bool = False
) -> tuple[pl.DataFrame, int]:
    """The stored bars that stay on the dates ``accepted`` rewrites, and how many stored bars go.

    Publishing replaces a date's partition, so every stored bar not carried over is lost. By default
    each stored bar whose (symbol, date) has no accepted row in the batch is kept: a symbol missing
    from the new file, or whose new bar was quarantined, keeps its stored bar. With ``restate`` the
    batch replaces whole dates: stored symbols absent from it are dropped, but a symbol whose new
    row was rejected still keeps its stored good bar.
    """
    if accepted.is_empty():
        return accepted.clear(), 0
    keys = ["symbol", "date"]
    dates = accepted["date"].unique()
    stored = lake.read_bars(root, dates.min(), dates.max()).filter(pl.col("date").is_in(dates.to_list()))  # type: ignore[arg-type]
    unreplaced = stored.join(accepted.select(keys), on=keys, how="anti")
    kept = unreplaced.join(rejected.select(keys).unique(), on=keys, how="semi") if restate else unreplaced
    return kept.select(accepted.columns), unreplaced.height - kept.height


def ingest_window(
    source: MarketDataSource,
    start: dt.date,
    end: dt.date,
    paths: Paths,
    cfg: QualityConfig,
    *,
    restate: bool = False,
) -> IngestResult:
    """Fetch ``start..end`` from ``source`` and publish what passes; see the module docstring.

    Raises ``SchemaError`` (after copying the offending file to quarantine) when an input cannot be
    read as bars. Returns an ``IngestResult`` whose ``gate`` tells whether anything was published.
    ``restate``: replace each published date whole (see ``stored_bars_to_keep``).
    """
    # The quarantine exists even when nothing was ever rejected: it is an output of the ingest (dvc.yaml).
    paths.quarantine.mkdir(parents=True, exist_ok=True)
    try:
        batch = source.read_all() if isinstance(source, WholeFileSource) else source.fetch(start, end)
    except SchemaError as err:
        quarantine.quarantine_file(Path(err.source_file), str(err), paths.quarantine / source.name / "files")
        raise
    root = paths.bars(source.name)
    first = min(start, batch["date"].min() or start)  # type: ignore[type-var]
    gate = validate_batch(batch, lake.last_bars_before(root, first), cfg, publish=(start, end))
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
    in_window = pl.col("date").is_between(start, end)
    accepted = gate.accepted.filter(in_window)
    published: tuple[lake.PartitionWrite, ...] = ()
    kept, dropped = accepted.clear(), 0
    if gate.passed:
        kept, dropped = stored_bars_to_keep(accepted, gate.rejected, root, restate=restate)
        published = tuple(lake.write_partitions(pl.concat([accepted, kept]), root))
    if published and isinstance(source, TruthfulSource):
        source.write_truth(paths.truth(source.name))
    return IngestResult(
        source.name,
        start,
        end,
        batch.height,
        gate,
        published,
        qdir,
        rows_outside_window=gate.accepted.height - accepted.height,
        rows_out_of_order=rows_out_of_order(batch),
        stored_kept=kept.height,
        stored_dropped=dropped,
        restate=restate,
    )
