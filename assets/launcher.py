"""``WarmRunLauncher``: each run in a process forked from a warm one instead of a fresh interpreter.

Dagster's default launcher asks the code server to start a run, and the code server spawns a new Python that
imports the code location again: about 4 s for MEM (dbt's adapters, scikit-learn, Great Expectations on first
use) before the run's first step, three times per trading day in the daily loop. This launcher keeps one warm
process per launching process (the daemon, the webserver): Python's ``forkserver``, with the run's code location
and the ``preload`` modules imported once. Each run is forked from it: one process per run as before (a crash or
a leak stays in its run), started in a fraction of a second. The warm process is started in the background by
the first launch; until it is up, runs start as Dagster's default launcher starts them, so no run waits for it.

The warm process never runs stale code: the launcher remembers the source files of every module the warm process
loaded from the code location's directory (and the ``watch`` files, e.g. the dbt manifest the assets are built
from) and restarts it when one of them changed (that launch, too, goes the default way). Runs of another code
location, or of one not loaded from a Python module, go through Dagster's default launcher.

The warm process only imports (a ``preload`` module may do more only if it starts no thread: a thread pool that
exists there is missing in the forked run while its bookkeeping says otherwise; see assets/dbt_warmup.py).

In ``dagster.yaml``::

    run_launcher:
      module: assets.launcher
      class: WarmRunLauncher
      config: {preload: [great_expectations.expectations, assets.dbt_warmup],
               watch: [dbt_project/target/manifest.json]}
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._config.config_schema import UserConfigSchema
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import DefaultRunLauncher, LaunchRunContext
from dagster._serdes import ConfigurableClassData

WORKER_TAG = "mem/run_worker"  # host:pid of the run's process, to terminate it


def _loaded_sources(root: str, watch: Sequence[str]) -> dict[str, int]:
    """The files the warm process's code came from: every loaded module's source under ``root``, and ``watch``."""
    files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
    under = [f for f in files if f and f.startswith(root + os.sep)]
    return {f: os.stat(f).st_mtime_ns for f in [*under, *(os.path.join(root, w) for w in watch)] if os.path.exists(f)}


def _report_sources(conn: multiprocessing.connection.Connection, root: str, watch: Sequence[str]) -> None:
    conn.send(_loaded_sources(root, watch))
    conn.close()


def _execute(run_id: str, instance_ref: InstanceRef) -> None:
    """The forked run worker: what ``dagster api execute_run`` does, without importing anything again."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), dg.DagsterInstance.from_ref(instance_ref) as instance:
        _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)


class WarmRunLauncher(DefaultRunLauncher):
    """Forks each run of a Python-module code location from a warm process (see the module's docstring)."""

    def __init__(
        self, inst_data: ConfigurableClassData | None = None, preload: Sequence[str] = (), watch: Sequence[str] = ()
    ) -> None:
        super().__init__(inst_data=inst_data)
        self._preload, self._watch = list(preload), list(watch)
        self._lock = threading.Lock()
        self._warming = threading.Event()
        self._pointer: ModuleCodePointer | None = None  # the code location the warm process holds
        self._sources: dict[str, int] = {}

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {
            "preload": dg.Field([str], is_required=False, default_value=[]),
            "watch": dg.Field([str], is_required=False, default_value=[]),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> WarmRunLauncher:
        return cls(inst_data=inst_data, preload=config_value.get("preload", []), watch=config_value.get("watch", []))

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        pointer = origin.repository_origin.code_pointer if origin else None
        module_location = isinstance(pointer, ModuleCodePointer) and pointer.working_directory
        ctx = self._warm_context(pointer) if module_location else None
        if ctx is None:  # not warm yet (warming in the background), stale, or another code location
            return super().launch_run(context)
        worker = ctx.Process(target=_execute, args=(run.run_id, self._instance.get_ref()), name=run.run_id)
        worker.start()  # multiprocessing keeps the child and reaps it when it ends
        self._instance.add_run_tags(run.run_id, {WORKER_TAG: f"{socket.gethostname()}:{worker.pid}"})
        self._run_ids.add(run.run_id)

    def ready(self) -> bool:
        """Whether a warm process is up (the next run of its code location forks from it)."""
        return self._pointer is not None and not self._warming.is_set()

    def _warm_context(self, pointer: ModuleCodePointer) -> multiprocessing.context.ForkServerContext | None:
        """The warm process when it holds ``pointer``'s current code; else None, and (re)warming begins in the
        background so that a run never waits for it longer than Dagster's default launcher would take."""
        with self._lock:
            if self._warming.is_set():
                return None
            if self._pointer is not None and self._pointer != pointer:
                return None  # the warm process serves the first code location launched
            if self._pointer is not None and not any(_mtime(f) != m for f, m in self._sources.items()):
                return multiprocessing.get_context("forkserver")
            self._warming.set()
        threading.Thread(target=self._warm, args=(pointer,), name="mem-warm-run-launcher", daemon=True).start()
        return None

    def _warm(self, pointer: ModuleCodePointer) -> None:
        """(Re)start the forkserver with ``pointer``'s module and ``preload`` imported; record their sources."""
        try:
            ctx = multiprocessing.get_context("forkserver")
            multiprocessing.forkserver._forkserver._stop()  # no-op when not running
            root = str(Path(pointer.working_directory).resolve())
            if root not in sys.path:
                sys.path.insert(0, root)  # the forkserver imports with the launching process's path
            ctx.set_forkserver_preload([*self._instance_modules(), pointer.module, *self._preload])
            receive, send = ctx.Pipe(duplex=False)
            probe = ctx.Process(target=_report_sources, args=(send, root, self._watch))
            probe.start()
            send.close()
            sources = receive.recv()
            probe.join()
            with self._lock:
                self._sources, self._pointer = sources, pointer
        except Exception:  # noqa: BLE001 - runs keep starting the default way; the next launch tries again
            logging.getLogger("mem.launcher").exception("the warm run process did not start")
        finally:
            self._warming.clear()

    def _instance_modules(self) -> list[str]:
        """What a run's process imports to open the instance (its storages, SQLAlchemy, Alembic): 0.4 s for
        SQLite storage when not preloaded. Imported only: no connection is opened in the warm process."""
        storages = (self._instance.run_storage, self._instance.event_log_storage, self._instance.schedule_storage)
        return ["dagster._core.instance.factory", *(type(s).__module__ for s in storages if s is not None)]

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id) if self.has_instance else None
        worker = run.tags.get(WORKER_TAG) if run else None
        if run is None or worker is None:
            return super().terminate(run_id)
        if run.is_finished:
            return False
        host, pid = worker.rsplit(":", 1)
        if host != socket.gethostname():
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(int(pid), signal.SIGINT)  # the run turns it into a clean cancellation (capture_interrupts)
        except ProcessLookupError:
            return False
        return True


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None
