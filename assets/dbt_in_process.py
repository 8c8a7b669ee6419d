"""dbt in the run's own process (dbt's ``dbtRunner``), its events turned into Dagster events by dagster-dbt.

dagster-dbt starts dbt as a subprocess and, before it, opens a dbt adapter in the run's process: about 2.3 s of
start-up per invocation (dbt's imports, 1.4 s, which the run's process has already paid for through
dagster-dbt; the adapter, 0.9 s) before dbt parses anything. Here dbt runs in this process instead, with the
same arguments, the same per-invocation target folder (seeded with the project's partial-parse file) and the
same selection of the run's asset subset; each structured event dbt emits is handed to dagster-dbt's own
converter (``DbtCoreCliEventMessage.to_default_asset_events``), so materializations and asset checks are the
ones ``DbtCliResource.cli(...).stream()`` yields. The warehouse connection dbt opens is closed when it finishes
(``keep_open: false`` in the profile): the run's later steps read the warehouse from this same process.
"""

from __future__ import annotations

import queue
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator
from dagster_dbt.asset_utils import extract_runtime_selection_from_args, get_updated_cli_invocation_params_for_context
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
from dagster_dbt.errors import DagsterDbtCliRuntimeError

PARTIAL_PARSE = "partial_parse.msgpack"
_DONE = object()


def dbt_events(
    args: Sequence[str],
    context: dg.AssetExecutionContext,
    project_dir: Path,
    profiles_dir: Path,
    target_path: Path,
) -> Iterator[Any]:
    """Run ``dbt <args>`` for ``context``'s asset subset in this process; yield the Dagster events."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    cleaned, selects, excludes = extract_runtime_selection_from_args(args)
    params = get_updated_cli_invocation_params_for_context(
        context, {}, DagsterDbtTranslator(), runtime_selects=selects, runtime_excludes=excludes
    )
    if params.dbt_project is not None:
        project_dir = Path(params.dbt_project.project_dir)
    seed_partial_parse(project_dir / "target", target_path)
    argv = [
        *cleaned,
        *params.selection_args,
        *(["--indirect-selection", params.indirect_selection] if params.indirect_selection else []),
        *project_args(project_dir, profiles_dir, target_path),
    ]
    events: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def invoke() -> None:
        try:
            outcome["result"] = dbtRunner(callbacks=[events.put]).invoke(argv)
        except BaseException as error:  # noqa: BLE001 - re-raised in the run's thread below
            outcome["error"] = error
        finally:
            events.put(_DONE)

    worker = threading.Thread(target=invoke, name="dbt", daemon=True)
    worker.start()
    errors: list[str] = []
    while (msg := events.get()) is not _DONE:
        raw = msg_to_dict(msg)
        if raw.get("info", {}).get("level") == "error":
            errors.append(raw["info"].get("msg", ""))
        yield from DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={}).to_default_asset_events(
            manifest=params.manifest,
            dagster_dbt_translator=params.dagster_dbt_translator,
            context=context,
            target_path=target_path,
            project=params.dbt_project,
        )
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    if not result.success:
        detail = "\n".join(errors) or repr(result.exception)
        raise DagsterDbtCliRuntimeError(
            description=f"dbt {' '.join(cleaned)} failed (logs: {target_path / 'dbt.log'}):\n{detail}"
        )


def seed_partial_parse(project_target: Path, target_path: Path) -> None:
    """dbt re-parses only what changed when the target folder holds the last parse (as dagster-dbt does)."""
    source = project_target / PARTIAL_PARSE
    target_path.mkdir(parents=True, exist_ok=True)
    if source.exists() and not (target_path / PARTIAL_PARSE).exists():
        shutil.copy(source, target_path / PARTIAL_PARSE)


def project_args(project_dir: Path, profiles_dir: Path, target_path: Path) -> list[str]:
    """Where dbt finds the project and the profile and writes its artifacts and logs (no usage statistics)."""
    return ["--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir), "--target-path", str(target_path),
            "--log-path", str(target_path), "--no-send-anonymous-usage-stats"]  # fmt: skip
