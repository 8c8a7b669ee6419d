"""Where an order came from: a child order's client id, back through the ledger to its parent, the decision
version that sized it, what that decision read (its manifest: data digests, model artifacts, params, code) and
the files on disk that hold them (the day's stored inputs, the model artifacts, the raw bars of the day)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from mem_pipeline.core.paths import Paths
from mem_pipeline.decisions.store import DecisionStore
from mem_pipeline.decisions.types import DecisionError
from mem_pipeline.execution.ledger import Ledger


@dataclass(frozen=True)
class Lineage:
    client_id: str
    child: dict[str, Any]
    transitions: pl.DataFrame  # from_state, to_state, at, reason
    parent: dict[str, Any]
    decision: dict[str, Any]  # version, code_version, model_hashes, data_versions, inputs digests, risk_assessment
    files: dict[str, Path] = field(default_factory=dict)  # what the decision read, on disk

    def missing(self) -> list[str]:
        """Names of the files the chain points to that are no longer on disk."""
        return [name for name, path in self.files.items() if not path.exists()]


def trace(paths: Paths, ledger: Ledger, client_id: str, source: str) -> Lineage:
    """The lineage of child order ``client_id`` (raises ``DecisionError`` naming the missing link)."""
    record = ledger.child(client_id)
    if record is None:
        raise DecisionError(f"lineage: no child order {client_id!r} in the ledger (`mem orders` lists them)")
    if record.parent_id is None:
        raise DecisionError(f"lineage: {client_id} was adopted from the broker; it has no parent decision")
    parents = ledger.parents_frame()
    rows = parents.filter(pl.col("parent_id") == record.parent_id) if parents.height else parents
    if rows.height == 0:
        raise DecisionError(f"lineage: parent {record.parent_id} of {client_id} is not in the ledger")
    parent = rows.row(0, named=True)
    version = str(parent["decision_version"])
    decision = DecisionStore(paths.decisions).read(version)
    manifest = decision.manifest
    day = decision.decision_date
    files = {
        "decision_orders": paths.decisions / day.isoformat() / f"{version}.parquet",
        "risk_inputs": paths.risk_day(day) / "inputs",
        "raw_bars_of_the_day": paths.bars(source) / f"date={day.isoformat()}" / "part.parquet",
    }
    for model, artifact in sorted(manifest.get("model_hashes", {}).items()):
        files[f"model_{model}"] = paths.models / model / str(artifact)
    child = {k: v for k, v in vars(record).items() if k != "client_id"}
    return Lineage(
        client_id,
        child,
        ledger.transitions_frame(client_id).select("from_state", "to_state", "at", "reason"),
        {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in parent.items()},
        {
            "version": version,
            "decision_date": day.isoformat(),
            "code_version": manifest.get("code_version"),
            "model_hashes": manifest.get("model_hashes", {}),
            "data_versions": manifest.get("data_versions", {}),
            "inputs": manifest.get("inputs", {}),
            "risk_assessment": manifest.get("risk_assessment"),
        },
        files,
    )
