"""A dbt-duckdb plugin that loads the feature kernels when dbt opens the warehouse.

numba's start-up (its import and the kernels' cached code, about 0.45 s in a fresh process) would otherwise
wait for ``fct_features_daily`` to start; on a thread from the first connection on it overlaps dbt's own
work and the SQL models before the mart (their queries release the GIL). Listed in ``profiles.yml``.
"""

from __future__ import annotations

import threading
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin


def _load() -> None:
    from mem_pipeline.features.rolling import load_kernels

    load_kernels()


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        # not a daemon: a short dbt run waits for it rather than exiting with numba half-way through loading
        threading.Thread(target=_load, name="mem-feature-kernels").start()
