"""Imported by the warm run launcher's process (``preload`` in config/dagster.yaml): parses MEM's dbt project
once, as the runs will (same project, profile and vars), so that runs forked from it find dbt's parser loaded and
its macros compiled. The first dbt invocation of a fresh process takes about 1.3 s longer than the next ones
(measured on the daily loop's one-day build: 3.8 s cold, 2.5 s after this parse).

Runs are forked from this process, so it must not start a thread: a thread pool that exists here is missing
in the fork while its bookkeeping says otherwise. dbt's static parser (dbt_extractor) starts a Rust thread pool on
first use, and a parse with it here made every forked run's dbt wait forever; this parse renders with Jinja
instead (``--no-static-parser``) and opens no warehouse connection. Tested: no thread is started, and dbt runs
in a process forked after it. Best effort: a failure only means runs start dbt cold, so it is reported and
swallowed (an exception would stop the warm process from starting)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path


def _parse() -> None:
    from dbt.cli.main import dbtRunner

    from assets.dbt_in_process import project_args, seed_partial_parse
    from mem_pipeline.core.paths import DBT_PROJECT_DIR, Paths
    from mem_pipeline.ingest.sources.registry import configured_source_name

    os.environ.setdefault("MEM_DATA_DIR", str(Paths.from_env().data))
    with tempfile.TemporaryDirectory(prefix="mem-dbt-warmup-") as target:
        seed_partial_parse(DBT_PROJECT_DIR / "target", Path(target))
        args = ["parse", "--quiet", "--no-static-parser", "--vars", json.dumps({"source": configured_source_name()}),
                *project_args(DBT_PROJECT_DIR, DBT_PROJECT_DIR, Path(target))]  # fmt: skip
        result = dbtRunner().invoke(args)
        if not result.success:
            raise RuntimeError(f"dbt parse failed: {result.exception}")


try:
    _parse()
except Exception as error:  # noqa: BLE001 - see the module's docstring
    print(f"MEM: dbt warm-up skipped ({error}); runs start dbt cold", file=sys.stderr)
