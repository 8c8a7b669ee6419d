"""The signal model and the decision memory as assets.

``signal_model`` refits the walk-forward direction model on the features and the labels known by
``as_of``, weighting training rows by the decision memory's prioritized replay when configured.
``decision_memory`` journals the model's out-of-sample calls and their outcomes. The memory feeds the
*next* refit: ``signal_model`` reads the journal as saved by the last ``decision_memory`` run (state
from an earlier run, like the ledger), so the asset graph stays acyclic.
"""

import datetime as dt
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from assets.defs.models.assets import RefitConfig, publish
from assets.metadata import check, markdown_table, png_markdown
from assets.pools import WAREHOUSE_POOL
from assets.resources import LakeResource
from mem_pipeline.core.params import model_params, section
from mem_pipeline.core.paths import Paths
from mem_pipeline.features.warehouse import read_relation, relation_columns
from mem_pipeline.memory.decision_memory import DecisionMemory, MemoryConfig, record_direction_calls, row_weights
from mem_pipeline.models import artifacts
from mem_pipeline.models.signal import (
    DATE,
    LABEL,
    RETURN,
    FittedSignal,
    SignalConfig,
    fit_signal,
    plot_reliability,
    training_frame,
)
from mem_pipeline.models.signal_columns import feature_columns

JOURNAL = "journal.parquet"


class SignalRefitConfig(RefitConfig):
    """``use_memory``: weight training rows by the decision memory; unset: ``models.signal.use_memory``."""

    use_memory: bool | None = None


def _memory_config() -> MemoryConfig:
    return MemoryConfig.from_params(section("models").get("memory"))


def _journal(paths: Paths) -> Path:
    return paths.memory / JOURNAL


@dg.asset(
    group_name="models",
    kinds={"lightgbm", "scikit-learn"},
    deps=[dg.AssetKey("fct_features_daily"), dg.AssetKey("fct_labels_daily")],
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec("probabilities_valid", asset="signal_model", blocking=True),
        dg.AssetCheckSpec("calibrated", asset="signal_model", blocking=True),
        dg.AssetCheckSpec(
            "beats_base_rate",
            asset="signal_model",
            description="Out-of-sample log-loss of the published probability below the base rate's (a warning).",
        ),
    ],
    description="Walk-forward direction model (LightGBM, Platt-calibrated) with a Thompson-weighted strategy ensemble.",
)
def signal_model(context: dg.AssetExecutionContext, config: SignalRefitConfig, lake: LakeResource):
    paths = lake.paths()
    settings, checks = model_params("signal")
    as_of = config.date()
    columns = relation_columns(paths, "fct_features_daily")
    features = read_relation(paths, "fct_features_daily", columns, as_of)
    labels = read_relation(paths, "fct_labels_daily", ["symbol", "trade_date", LABEL, RETURN], as_of)
    frame = training_frame(features, labels)
    last_day = frame["known_date"].max()
    weights, memory_info = None, {"used": False}
    journal = _journal(paths)
    use_memory = checks.get("use_memory", False) if config.use_memory is None else config.use_memory
    if use_memory and journal.exists():
        memory = DecisionMemory.load(journal, _memory_config())
        weights = row_weights(memory, frame, last_day)
        memory_info = {
            "used": True,
            "rows_weighted": int((weights != 1.0).sum()),
            "weight_min": float(weights.min()),
            "weight_max": float(weights.max()),
        }
    fitted = fit_signal(frame, feature_columns(columns), SignalConfig.from_params(settings), sample_weight=weights)
    artifact = publish(paths, "signal", fitted.save, {"as_of": str(last_day)})

    metrics = fitted.metrics()
    published = fitted.published
    p = fitted.oos[f"p_{published}"].to_numpy()
    valid = bool(np.isfinite(p).all() and ((p > 0) & (p < 1)).all())
    yield check("probabilities_valid", valid, float(np.isfinite(p).mean()), 1.0, published=published)
    max_ece = float(checks.get("max_ece", 0.03))
    ece = float(metrics[f"ece_{published}"])
    yield check("calibrated", ece <= max_ece, ece, max_ece, published=published)
    loss, base = float(metrics[f"log_loss_{published}"]), float(metrics["log_loss_base_rate"])
    yield dg.AssetCheckResult(
        check_name="beats_base_rate",
        passed=loss < base,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"actual": loss, "threshold": base, "published": published},
    )
    with tempfile.TemporaryDirectory() as tmp:
        plot = png_markdown(
            plot_reliability(fitted.oos, f"p_{published}", Path(tmp) / "reliability.png"), "reliability diagram"
        )
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(artifact.name),
        metadata={
            "artifact": str(artifact),
            "fitted_on": f"{frame[DATE].min()} .. {frame[DATE].max()} ({frame.height} rows; labels by {last_day})",
            "published": published,
            "candidates": dg.MetadataValue.md(markdown_table(_candidates(metrics))),
            "reliability": dg.MetadataValue.md(markdown_table(pl.DataFrame(metrics["reliability_calibrated"]))),
            "ensemble": dg.MetadataValue.json(fitted.ensemble or {}),
            "payoff_ratio": fitted.payoff_ratio,
            "memory": dg.MetadataValue.json(memory_info),
            "folds": dg.MetadataValue.md(markdown_table(pl.DataFrame(metrics["folds"]))),
            "plot": plot,
        },
    )


def _candidates(metrics: dict) -> pl.DataFrame:
    names = [n for n in ("base_rate", "logistic", "calibrated", "raw", "ensemble") if f"log_loss_{n}" in metrics]
    return pl.DataFrame(
        {
            "candidate": names,
            "log_loss": [metrics[f"log_loss_{n}"] for n in names],
            "ece": [metrics[f"ece_{n}"] for n in names],
            "brier": [metrics.get(f"brier_{n}") for n in names],
        }
    )


@dg.asset(
    group_name="models",
    kinds={"polars"},
    deps=[signal_model],
    check_specs=[dg.AssetCheckSpec("outcomes_after_decisions", asset="decision_memory", blocking=True)],
    description="Journal of decisions and outcomes with prioritized replay; weights the next signal refit.",
)
def decision_memory(context: dg.AssetExecutionContext, lake: LakeResource):
    paths = lake.paths()
    journal = _journal(paths)
    config = _memory_config()
    memory = DecisionMemory.load(journal, config) if journal.exists() else DecisionMemory(config)
    fitted = FittedSignal.load(artifacts.current_artifact(paths.models, "signal"))
    if fitted.oos is None:
        raise dg.Failure("the current signal artifact has no out-of-sample predictions: refit signal_model")
    added = record_direction_calls(memory, fitted.oos, f"p_{fitted.published}")
    digest = memory.save(journal)

    j = memory.journal
    as_of = j["known_date"].max() or dt.date.today()
    early = j.filter(pl.col("known_date") < pl.col("trade_date")).height
    yield check("outcomes_after_decisions", early == 0, float(early), 0.0)
    weights = memory.sample_weights(as_of)
    views = pl.DataFrame(
        [
            {"view": name, "rows": v.count, "known": v.known, "mean_surprise": v.mean_surprise, "hit_rate": v.hit_rate}
            for name, v in memory.views(as_of).items()
        ]
    )
    top = j.with_columns(priority=pl.Series(memory.priorities(as_of))).sort("priority", descending=True).head(10)
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(digest[:16]),
        metadata={
            "journal": str(journal),
            "rows": j.height,
            "new_rows": added,
            "as_of": str(as_of),
            "views": dg.MetadataValue.md(markdown_table(views)),
            "replay_weight_range": f"{weights[weights > 0].min():.3f} .. {weights.max():.3f}" if weights.any() else "-",
            "highest_priority": dg.MetadataValue.md(markdown_table(top)),
        },
    )
