"""Where an order came from: a child order's client id, back through the ledger to its parent, the decision
version that sized it, what that decision read (its manifest: data digests, model artifacts, params, code) and
the files on disk that hold them (the day's stored inputs, the model artifacts, the raw bars of the day), each
hash recomputed from what is on disk now and compared with the one the decision recorded, and the DVC stage
hashes (``dvc.lock``) of the outputs that hold them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from mem_pipeline.core.paths import PROJECT_ROOT, Paths
from mem_pipeline.decisions.inputs import day_features, raw_file, raw_file_digest
from mem_pipeline.decisions.store import DecisionStore
from mem_pipeline.decisions.types import DecisionError
from mem_pipeline.decisions.version import frame_digest, version_of
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.models.artifacts import content_hash


@dataclass(frozen=True)
class HashCheck:
    """One link of the chain: the hash the decision recorded and the one recomputed from ``path`` now."""

    link: str
    path: Path
    recorded: str
    actual: str

    @property
    def ok(self) -> bool:
        return self.recorded == self.actual


@dataclass(frozen=True)
class Lineage:
    client_id: str
    child: dict[str, Any]
    transitions: pl.DataFrame  # from_state, to_state, at, reason
    parent: dict[str, Any]
    decision: dict[str, Any]  # version, code_version, model_hashes, data_versions, inputs digests, risk_assessment
    files: dict[str, Path] = field(default_factory=dict)  # what the decision read, on disk
    checks: list[HashCheck] = field(default_factory=list)
    dvc_stages: dict[str, str] = field(default_factory=dict)  # output -> hash recorded in dvc.lock

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
        "raw_bars_of_the_day": raw_file(paths, source, day),
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
        _checks(paths, source, day, version, manifest),
        _dvc_stage_hashes(paths),
    )


def _checks(paths: Paths, source: str, day: dt.date, version: str, manifest: dict) -> list[HashCheck]:
    """Each recorded hash against the bytes on disk: the decision (its version is the digest of its manifest),
    the model artifacts (a folder is named by its content hash), the day's features rows as the warehouse holds
    them now, and the day's raw lake file."""
    checks = [
        HashCheck("decision", paths.decisions / day.isoformat() / f"{version}.json", version, version_of(manifest))
    ]
    for model, artifact in sorted(manifest.get("model_hashes", {}).items()):
        folder = paths.models / model / str(artifact)
        checks.append(HashCheck(f"model {model}", folder, str(artifact), _or_missing(folder, content_hash)))
    recorded = manifest.get("data_versions", {})
    if "fct_features_daily" in recorded:
        checks.append(
            HashCheck(
                "features of the day", paths.warehouse / "mem.duckdb", recorded["fct_features_daily"],
                _features_digest(paths, day),
            )
        )  # fmt: skip
    if "raw_bars" in recorded:
        checks.append(
            HashCheck("raw bars of the day", raw_file(paths, source, day), recorded["raw_bars"],
                      raw_file_digest(paths, source, day))
        )  # fmt: skip
    return checks


def _or_missing(path: Path, digest) -> str:
    return digest(path) if path.exists() else "missing"


def _features_digest(paths: Paths, day: dt.date) -> str:
    try:
        return frame_digest(day_features(paths, day))
    except Exception as error:  # noqa: BLE001 - a missing warehouse is a broken link, shown as such
        return f"unreadable: {error}"


def _dvc_stage_hashes(paths: Paths) -> dict[str, str]:
    """The md5 ``dvc.lock`` records for each output of the chain, when the data folder is the project's (the
    one DVC tracks)."""
    lock = PROJECT_ROOT / "dvc.lock"
    if paths.data.resolve() != (PROJECT_ROOT / "data").resolve() or not lock.exists():
        return {}
    stages = yaml.safe_load(lock.read_text(encoding="utf-8")).get("stages", {})
    wanted = ("data/raw", "data/warehouse/mem.duckdb", "data/models", "data/risk", "data/decisions")
    return {
        f"{name}: {out['path']}": str(out.get("md5", ""))
        for name, stage in stages.items()
        for out in stage.get("outs", [])
        if out.get("path") in wanted
    }
