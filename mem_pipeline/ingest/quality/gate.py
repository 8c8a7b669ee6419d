"""Run the bar rules on a batch and decide what may be published.

Every row that breaks a rule is rejected with the rule's name and reason (it goes to quarantine,
never silently dropped). The batch as a whole passes only if, on every date it publishes, the
rejected share is within ``max_rejected_share``; otherwise nothing of it may be published.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mem_pipeline.core.errors import format_rows
from mem_pipeline.ingest.quality.rules import RULES, QualityConfig, Rule, abs_log_returns, add_context_columns

_CONTEXT_COLUMNS = ("days_since_prev", "days_after_as_of", "abs_log_return")


@dataclass(frozen=True)
class RuleOutcome:
    name: str
    description: str
    rows: tuple[int, ...]  # 0-based positions in the batch

    @property
    def passed(self) -> bool:
        return not self.rows


@dataclass(frozen=True)
class GateResult:
    accepted: pl.DataFrame
    rejected: pl.DataFrame  # the batch's columns + ``rule`` (first rule broken) + ``reason`` (all)
    outcomes: tuple[RuleOutcome, ...]
    by_date: pl.DataFrame  # date, rows, rejected, rejected_share (the dates judged: those published)
    max_rejected_share: float

    @property
    def worst_share(self) -> float:
        return float(self.by_date["rejected_share"].max() or 0.0)

    @property
    def passed(self) -> bool:
        return self.worst_share <= self.max_rejected_share

    def failing_dates(self) -> pl.DataFrame:
        return self.by_date.filter(pl.col("rejected_share") > self.max_rejected_share)

    def describe(self, outcome: RuleOutcome) -> str:
        """'<file> rows 3, 17: [rule] description' for each input file the rule's rows came from."""
        hits = self.rejected.filter(pl.col("reason").str.contains(f"[{outcome.name}]", literal=True))
        lines = []
        for (source_file,), group in hits.group_by(["source_file"], maintain_order=True):
            rows = group["source_row"].to_list()
            lines.append(f"{source_file} rows {format_rows(rows)}: [{outcome.name}] {outcome.description}")
        return "\n".join(lines)

    def summary(self) -> str:
        broken = [self.describe(o) for o in self.outcomes if not o.passed]
        head = (
            f"{self.rejected.height} of {self.rejected.height + self.accepted.height} rows rejected; "
            f"worst date share {self.worst_share:.2%} (limit {self.max_rejected_share:.2%})"
        )
        return "\n".join([head, *broken])


def validate_batch(
    batch: pl.DataFrame,
    prior: pl.DataFrame,
    cfg: QualityConfig,
    publish: tuple[dt.date, dt.date] | None = None,
) -> GateResult:
    """Apply every rule in ``RULES`` to ``batch``.

    ``prior``: the last stored bar per symbol before the batch (``symbol``, ``date``, ``close``),
    so that order and jump rules hold across batches, not only inside one.

    ``publish``: the dates the run publishes (inclusive). Every row is validated and every broken
    row rejected, but the share limit is judged on these dates only. A row outside them (e.g. one
    future-dated typo in a file) is quarantined and reported, and does not refuse the batch: it is
    published by no run (until fixed), so it cannot contaminate what this run publishes, and
    refusing would block every good day of the file for a row already isolated. A future date
    inside the window counts toward its date's share like any other rejection.
    """
    frame = add_context_columns(batch, prior, cfg)
    row_rules = [r for r in RULES if r.name != "plausible_returns"]
    hits = _run_suite(frame, row_rules, cfg)
    broken = np.zeros(frame.height, dtype=bool)
    for rows in hits.values():
        broken[list(rows)] = True
    frame = frame.with_columns(abs_log_return=pl.Series(abs_log_returns(frame, prior, ~broken, cfg.max_abs_log_return)))
    hits.update(_run_suite(frame, [r for r in RULES if r.name == "plausible_returns"], cfg))
    return _split(batch, hits, cfg, publish)


def _split(
    batch: pl.DataFrame,
    hits: dict[str, tuple[int, ...]],
    cfg: QualityConfig,
    publish: tuple[dt.date, dt.date] | None,
) -> GateResult:
    outcomes = tuple(RuleOutcome(r.name, r.description, hits.get(r.name, ())) for r in RULES)
    broken: list[list[RuleOutcome]] = [[] for _ in range(batch.height)]
    for outcome in outcomes:
        for i in outcome.rows:
            broken[i].append(outcome)
    is_rejected = pl.Series([bool(b) for b in broken], dtype=pl.Boolean)
    labelled = batch.with_columns(
        rule=pl.Series([b[0].name if b else None for b in broken], dtype=pl.String),
        reason=pl.Series(
            ["; ".join(f"[{o.name}] {o.description}" for o in b) or None for b in broken], dtype=pl.String
        ),
    )
    judged = labelled if publish is None else labelled.filter(pl.col("date").is_between(*publish))
    by_date = (
        judged.group_by("date")
        .agg(rows=pl.len(), rejected=pl.col("rule").is_not_null().sum())
        .with_columns(rejected_share=pl.col("rejected") / pl.col("rows"))
        .sort("date")
    )
    return GateResult(
        accepted=batch.filter(~is_rejected),
        rejected=labelled.filter(is_rejected),
        outcomes=outcomes,
        by_date=by_date,
        max_rejected_share=cfg.max_rejected_share,
    )


def _run_suite(frame: pl.DataFrame, rules: Sequence[Rule], cfg: QualityConfig) -> dict[str, tuple[int, ...]]:
    """Validate ``frame`` with a GE suite made of ``rules``; failing row positions per rule."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if frame.height == 0:
        return {}
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("mem").add_dataframe_asset("bars").add_batch_definition_whole_dataframe("batch")
    )
    suite = gx.ExpectationSuite(name="bars")
    for rule in rules:
        for expectation in rule.expectations(cfg):
            expectation.meta = {"rule": rule.name}
            suite.add_expectation(expectation)
    suite = context.suites.add(suite)
    validation = gx.ValidationDefinition(name="bars", data=batch_definition, suite=suite)
    result = validation.run(
        batch_parameters={"dataframe": _to_pandas(frame)}, result_format={"result_format": "COMPLETE"}
    )
    hits: dict[str, set[int]] = {r.name: set() for r in rules}
    for item in result.results:
        rule = item.expectation_config.meta["rule"]
        if item.exception_info and item.exception_info.get("raised_exception"):
            raise RuntimeError(f"quality rule {rule} could not be evaluated: {item.exception_info}")
        if not item.success:
            hits[rule].update(int(i) for i in item.result.get("unexpected_index_list") or [])
    return {name: tuple(sorted(rows)) for name, rows in hits.items()}


def _to_pandas(frame: pl.DataFrame) -> Any:
    # GE treats NaN as missing; +/-inf must stay visible to the range rules, so keep floats as they are.
    return frame.to_pandas().reset_index(drop=True)
