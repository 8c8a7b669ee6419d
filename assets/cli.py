"""``mem``: MEM's command line (Typer, rich). Jobs run on the project's Dagster instance, as the UI's would.

mem demo                     # the whole path on the configured source (what `make demo` runs)
mem ui                       # the Dagster UI and daemon on http://127.0.0.1:3000
mem backtest [VARIANT ...]   # tuning, the variants (default: all, one run) and the report
mem report                   # the backtest report's table and verdicts
mem orders [--state STATE]   # the ledger's child orders
mem positions                # the ledger's positions
mem doctor                   # what this environment has, and what is missing
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mem_pipeline.core.paths import PARAMS_FILE, PROJECT_ROOT, Paths

app = typer.Typer(help="MEM: market data to trade decisions and orders, reproducibly.", no_args_is_help=True)
console = Console()


def _table(frame: pl.DataFrame, title: str, limit: int = 50) -> Table:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(column, justify="right" if frame[column].dtype.is_numeric() else "left")
    for row in frame.head(limit).iter_rows():
        table.add_row(*("—" if v is None else f"{v:,.6g}" if isinstance(v, float) else str(v) for v in row))
    return table


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _instance():  # noqa: ANN202 - a DagsterInstance, imported late: `mem doctor` must work without one
    import dagster as dg

    from assets.instance import ensure_dagster_home

    ensure_dagster_home()
    return dg.DagsterInstance.get()


@app.command()
def demo() -> None:
    """Ingest, features, models, the decision day, execution and fills on the configured source."""
    from assets.demo import main

    main()


@app.command()
def ui(port: int = 3000) -> None:
    """The Dagster UI (webserver and daemon) on 127.0.0.1."""
    from assets.instance import ensure_dagster_home

    ensure_dagster_home()
    dagster = Path(sys.executable).parent / "dagster"
    workspace = PROJECT_ROOT / "workspace.yaml"
    raise typer.Exit(subprocess.call([str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]))


def _run(job: str, instance, start: str | None = None, end: str | None = None, label: str | None = None) -> None:  # noqa: ANN001
    """Run a job on the instance behind a spinner, then print its wall time."""
    from assets.run import run_job

    name = escape(label or job)  # "backtest[mem]" is not rich markup
    with console.status(f"{name} ..."):
        seconds = run_job(job, instance, start, end)
    console.print(f"{name}: {seconds:.1f}s")


def _use_source(source: str | None) -> None:
    """Select the source before the definitions are imported (their partitions follow the source's calendar)."""
    if source is not None:
        from mem_pipeline.ingest.sources.registry import SOURCE_NAMES

        if source not in SOURCE_NAMES:
            _fail(f"unknown source {source!r}; one of {list(SOURCE_NAMES)}")
        os.environ["MEM_SOURCE"] = source


@app.command()
def ingest(
    source: Annotated[str | None, typer.Option(help="sample | synthetic | files | ccxt (default: params.yaml)")] = None,
    start: Annotated[str | None, typer.Option(help="first day or year (default: the calendar's first)")] = None,
    end: Annotated[str | None, typer.Option(help="last day or year (default: the calendar's last)")] = None,
) -> None:
    """Ingest through the quality gate into the lake, as one backfill run."""
    _use_source(source)
    _run("ingest", _instance(), start, end)


@app.command()
def backfill(
    start: str,
    end: str,
    source: Annotated[str | None, typer.Option(help="default: params.yaml's source")] = None,
) -> None:
    """Ingest START..END (days or years), then rebuild the features over it and the labels (one run per job)."""
    _use_source(source)
    instance = _instance()
    for job in ("ingest", "features", "labels"):
        partitioned = job != "labels"
        _run(job, instance, start if partitioned else None, end if partitioned else None)


@app.command()
def decide(day: str) -> None:
    """The day's risk limits and trade decision (the models must have a refit as of the day or earlier)."""
    _run("decisions", _instance(), day, day, f"decisions {day}")


KILL_SWITCH = re.compile(r"^(\s+kill_switch:\s*)(true|false)\b", re.MULTILINE)


@app.command("kill-switch")
def kill_switch(state: Annotated[str, typer.Argument(help="on | off")]) -> None:
    """Set the operator's emergency stop in params.yaml: on, the gate sends nothing from the next execution run."""
    if state not in ("on", "off"):
        _fail(f"kill-switch takes on or off, got {state!r}")
    path = Path(os.environ.get("MEM_PARAMS") or PARAMS_FILE)
    text = path.read_text(encoding="utf-8")
    if len(KILL_SWITCH.findall(text)) != 1:
        _fail(f"{path}: expected one `kill_switch: true|false` line under execution.gate")
    path.write_text(KILL_SWITCH.sub(rf"\g<1>{'true' if state == 'on' else 'false'}", text), encoding="utf-8")
    console.print(f"kill switch {state} in {path} (takes effect at the next execution run)")


@app.command()
def backtest(
    variants: Annotated[list[str] | None, typer.Argument(help="variants to run (default: every one)")] = None,
    tune: Annotated[bool, typer.Option(help="run backtest_tuning first")] = True,
) -> None:
    """Backtest the variants on the built warehouse (after `mem demo` or the ingest and features jobs), then the
    report."""
    from mem_pipeline.backtest.variants import VARIANTS

    unknown = sorted(set(variants or ()) - set(VARIANTS))
    if unknown:
        _fail(f"unknown variants {unknown}; choose among {list(VARIANTS)}")
    instance = _instance()
    if tune:
        _run("tune_backtest", instance)
    if not variants:  # every variant as one run: refits shared
        _run("run_backtest", instance, label="backtest (all variants)")
    for name in variants or ():
        _run("run_backtest", instance, name, name, f"backtest[{name}]")
    _run("report_backtest", instance)
    report()


@app.command()
def report() -> None:
    """The backtest report's table and verdicts (from data/reports/backtest/)."""
    folder = Paths.from_env().reports / "backtest"
    if not (folder / "variants.csv").exists():
        _fail(f"no report in {folder}: run `mem backtest` (or materialize backtest_report in the UI)")
    table = pl.read_csv(folder / "variants.csv")
    shown = table.select(
        "variant",
        pl.col("sharpe").round(2),
        pl.format("[{}, {}]", pl.col("sharpe_ci_low").round(2), pl.col("sharpe_ci_high").round(2)).alias("95% CI"),
        (pl.col("cagr") * 100).round(1).alias("CAGR %"),
        (pl.col("max_drawdown") * 100).round(1).alias("max DD %"),
        pl.col("dsr").round(2).fill_nan(None).alias("DSR"),
    )
    console.print(_table(shown, f"Backtest ({folder / 'report.md'})"))
    for line in (folder / "report.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("- "):
            console.print(line)


@app.command()
def orders(
    state: Annotated[str | None, typer.Option(help="only child orders in this state, e.g. filled")] = None,
    limit: int = 50,
) -> None:
    """The execution ledger's child orders, newest decision first."""
    from mem_pipeline.execution.runtime import open_ledger

    ledger = open_ledger(Paths.from_env())
    try:
        frame = ledger.orders_frame()
    finally:
        ledger.close()
    if frame.height == 0:
        console.print("0 child orders: nothing has been executed (run `mem demo`, or the execute_orders job)")
        return
    if state is not None:
        frame = frame.filter(pl.col("state") == state)
    columns = [c for c in ("client_id", "symbol", "side", "quantity", "filled_quantity", "state", "decision_date")
               if c in frame.columns]  # fmt: skip
    if "decision_date" in frame.columns:
        frame = frame.sort("decision_date", descending=True)
    console.print(_table(frame.select(columns), f"{frame.height} child orders", limit))


@app.command()
def positions() -> None:
    """The execution ledger's positions (signed units per symbol, from booked fills)."""
    from mem_pipeline.execution.runtime import open_ledger

    ledger = open_ledger(Paths.from_env())
    try:
        frame = ledger.positions()
    finally:
        ledger.close()
    console.print(_table(frame, f"{frame.height} positions"))


@app.command()
def lineage(client_id: str) -> None:
    """A child order back to its parent, its decision version, what that decision read, and the files."""
    from mem_pipeline.core.errors import MemError
    from mem_pipeline.decisions.lineage import trace
    from mem_pipeline.execution.runtime import open_ledger
    from mem_pipeline.ingest.sources.registry import configured_source_name

    paths = Paths.from_env()
    ledger = open_ledger(paths)
    try:
        found = trace(paths, ledger, client_id, configured_source_name())
    except MemError as exc:
        _fail(str(exc))
    finally:
        ledger.close()
    child = found.child
    console.print(f"[bold]order[/bold] {client_id}: {child['side']} {child['quantity']:g} {child['symbol']}, "
                  f"{child['state']}, filled {child['filled_quantity']:g}")  # fmt: skip
    console.print(_table(found.transitions, "its states"))
    parent = found.parent
    console.print(f"[bold]parent[/bold] {parent['parent_id']}: {parent['side']} {parent['quantity']:g} "
                  f"{parent['symbol']} toward {parent['target_position']:g}, {parent['schedule']} in "
                  f"{parent['n_slices']} slices")  # fmt: skip
    decision = found.decision
    console.print(f"[bold]decision[/bold] {decision['version']} of {decision['decision_date']} "
                  f"(code {decision['code_version']}, risk assessment {decision['risk_assessment']})")  # fmt: skip
    for title in ("model_hashes", "data_versions", "inputs"):
        items = decision[title]
        if items:
            frame = pl.DataFrame({"name": list(items), "digest": [str(v) for v in items.values()]})
            console.print(_table(frame, title.replace("_", " ")))
    files = pl.DataFrame(
        {"what": list(found.files), "path": [str(p) for p in found.files.values()],
         "on disk": ["yes" if p.exists() else "MISSING" for p in found.files.values()]}
    )  # fmt: skip
    console.print(_table(files, "files"))
    checks = pl.DataFrame(
        {"link": [c.link for c in found.checks], "recorded": [c.recorded for c in found.checks],
         "on disk now": [c.actual for c in found.checks], "": ["ok" if c.ok else "MISMATCH" for c in found.checks],
         "path": [str(c.path) for c in found.checks]}
    )  # fmt: skip
    console.print(_table(checks, "hashes: recorded by the decision, recomputed from disk"))
    if found.dvc_stages:
        stages = pl.DataFrame(
            {"stage: output": list(found.dvc_stages), "md5 in dvc.lock": list(found.dvc_stages.values())}
        )
        console.print(_table(stages, "DVC stages"))
    if not all(c.ok for c in found.checks):
        _fail("a link of the chain no longer matches what the decision recorded (see MISMATCH above)")


@app.command()
def metrics(port: int = 9108) -> None:
    """Serve Prometheus metrics on 127.0.0.1:PORT (orders by state, rejections, exposure, decision age, data
    freshness, last run per job) until interrupted."""
    from assets.metrics import serve
    from mem_pipeline.ingest.sources.registry import configured_source_name

    server, _ = serve(Paths.from_env(), configured_source_name(), port, _instance())
    console.print(f"metrics on http://127.0.0.1:{server.server_port}/metrics (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


@app.command()
def doctor() -> None:
    """Check the environment: versions, the params file, the Dagster instance, the warehouse, the ledger, disk."""
    from importlib.metadata import version

    paths = Paths.from_env()
    checks: list[tuple[str, bool, str]] = []
    for package in ("dagster", "dbt-duckdb", "duckdb", "polars", "lightgbm", "optuna"):
        try:
            checks.append((package, True, version(package)))
        except Exception as exc:  # noqa: BLE001 - a missing package is a finding, not a crash
            checks.append((package, False, f"not installed ({exc.__class__.__name__}): run `make install`"))
    checks.append(("params", PARAMS_FILE.exists(), str(PARAMS_FILE)))
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home")
    checks.append(("dagster instance", (home / "dagster.yaml").exists(), f"{home} (created by `make install`)"))
    warehouse = paths.warehouse / "mem.duckdb"
    if warehouse.exists():
        import duckdb

        try:
            duckdb.connect(str(warehouse), read_only=True).close()
            checks.append(("warehouse", True, f"{warehouse} opens read-only"))
        except duckdb.Error as exc:
            checks.append(("warehouse", False, f"{warehouse} is locked or broken: {exc}"))
    else:
        checks.append(("warehouse", False, f"{warehouse} not built yet: run `mem demo`"))
    try:
        from mem_pipeline.execution.runtime import open_ledger

        ledger = open_ledger(paths)
        ledger.positions()
        ledger.close()
        checks.append(("ledger", True, "reachable"))
    except Exception as exc:  # noqa: BLE001 - reported, never raised: the URL may carry a password
        checks.append(("ledger", False, f"unreachable ({exc.__class__.__name__}): check execution.ledger_url"))
    free = shutil.disk_usage(paths.data if paths.data.exists() else PROJECT_ROOT).free / 2**30
    checks.append(("free disk", free > 2, f"{free:.1f} GiB under {paths.data}"))
    table = Table(title="mem doctor", title_justify="left")
    for column in ("check", "ok", "detail"):
        table.add_column(column)
    for name, ok, detail in checks:
        table.add_row(name, "[green]yes[/green]" if ok else "[red]no[/red]", detail)
    console.print(table)
    if not all(ok for name, ok, _ in checks if name != "warehouse"):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
