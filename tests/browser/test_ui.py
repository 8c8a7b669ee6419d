"""The Dagster UI in headless Chromium (Debian's ``chromium``, driven by Playwright): the demo's instance served on
127.0.0.1, the asset graph with MEM's groups, a materialization launched from the UI that succeeds, a backtest
plot opened from an asset's metadata. ``make test-browser`` (run by ``.ci/run``); screenshots go to
``MEM_SCREENSHOTS`` (``docs/`` to refresh the README's) or a temporary folder."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from mem_pipeline.core.paths import PROJECT_ROOT

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GROUPS = ("ingest", "staging", "intermediate", "marts", "models", "risk", "decisions", "execution", "backtest")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``make demo``'s job on a throw-away data folder and Dagster instance."""
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MEM_DATA_DIR": str(tmp / "data")}
    subprocess.run([sys.executable, "-m", "assets.demo"], env=env, cwd=PROJECT_ROOT, check=True, capture_output=True)
    return env


def test_the_demo_leaves_no_asset_never_materialized(demo: dict[str, str]) -> None:
    from assets.definitions import defs

    instance = dg.DagsterInstance.from_config(demo["DAGSTER_HOME"])
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    never = sorted(k.to_user_string() for k in keys if instance.get_latest_materialization_event(k) is None)
    assert never == []
    assert len(keys) >= 18


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(demo: dict[str, str]):
    port = _free_port()
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", str(PROJECT_ROOT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        env=demo, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        os.killpg(web.pid, signal.SIGTERM)
        pytest.fail("dagster-webserver did not answer within 180 s")
    yield url
    os.killpg(web.pid, signal.SIGTERM)
    web.wait(timeout=60)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("MEM_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _skip_welcome(page) -> None:  # noqa: ANN001
    """A first visit shows a community pop-up over the page."""
    try:
        page.get_by_role("button", name="Skip").click(timeout=5000)
    except Exception:  # noqa: BLE001 - shown once per instance: absent is fine
        pass


def test_the_ui_shows_the_groups_runs_a_materialization_and_a_backtest_plot(ui: str, demo, shots: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)

        page.goto(f"{ui}/asset-groups")
        _skip_welcome(page)
        for group in GROUPS:
            expect(page.get_by_text(group, exact=True).first).to_be_visible()
        page.wait_for_timeout(1000)
        page.screenshot(path=shots / "ui_asset_graph.png")

        page.goto(f"{ui}/assets/slippage_model")
        page.get_by_text("Materialize", exact=True).first.click()
        toast = page.get_by_text("Launched run")
        expect(toast).to_be_visible()
        run_prefix = toast.inner_text().split()[-1]
        instance = dg.DagsterInstance.from_config(demo["DAGSTER_HOME"])
        [run_id] = [r.run_id for r in instance.get_runs() if r.run_id.startswith(run_prefix)]
        page.goto(f"{ui}/runs/{run_id}")
        expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=240_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=shots / "ui_run.png")

        page.goto(f"{ui}/assets/backtest_report")
        page.locator("tr", has_text="chart_equity").get_by_text("[Show Markdown]").click()
        expect(page.locator("img[alt=equity]")).to_be_visible()
        page.wait_for_timeout(500)
        page.screenshot(path=shots / "ui_backtest_plot.png")
        browser.close()

    run = instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS and run.asset_selection == {dg.AssetKey("slippage_model")}


def test_an_order_of_the_demo_traces_back_to_its_raw_file_and_every_hash_holds(demo: dict[str, str]) -> None:
    """One child order of the demo, back through its decision to the model artifacts, the day's features and
    the day's raw lake file: each hash the decision recorded equals one recomputed here from the bytes on disk
    (the raw file and the decision's manifest independently of MEM's code); the same chain is in the Dagster
    metadata; and a changed raw file breaks the chain where it changed (`mem lineage` exits 1)."""
    import hashlib
    import json

    from mem_pipeline.core.paths import Paths
    from mem_pipeline.decisions.lineage import trace
    from mem_pipeline.execution.runtime import open_ledger

    paths = Paths(data=Path(demo["MEM_DATA_DIR"]))
    ledger = open_ledger(paths)
    try:
        client_id = ledger.orders_frame()["client_id"][0]
        found = trace(paths, ledger, client_id, "sample")
    finally:
        ledger.close()
    assert [c.link for c in found.checks if not c.ok] == []
    assert {c.link for c in found.checks} >= {"decision", "features of the day", "raw bars of the day"}
    raw = found.files["raw_bars_of_the_day"]
    assert found.decision["data_versions"]["raw_bars"] == "sha256:" + hashlib.sha256(raw.read_bytes()).hexdigest()
    manifest_file = paths.decisions / found.decision["decision_date"] / f"{found.decision['version']}.json"
    manifest = json.loads(manifest_file.read_text())["manifest"]
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert hashlib.sha256(canonical.encode()).hexdigest()[:16] == found.decision["version"]

    instance = dg.DagsterInstance.from_config(demo["DAGSTER_HOME"])
    decided = instance.get_latest_materialization_event(dg.AssetKey("trade_decisions")).asset_materialization
    executed = instance.get_latest_materialization_event(dg.AssetKey("executed_orders")).asset_materialization
    assert decided.metadata["decision_version"].value == found.decision["version"]
    assert decided.metadata["data_versions"].value["raw_bars"] == found.decision["data_versions"]["raw_bars"]
    assert executed.metadata["decision_version"].value == found.decision["version"]

    shown = subprocess.run([sys.executable, "-m", "assets.cli", "lineage", client_id], env=demo, cwd=PROJECT_ROOT,
                           capture_output=True, text=True)  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    saved = raw.read_bytes()
    try:
        raw.write_bytes(saved + b"\0")
        broken = subprocess.run([sys.executable, "-m", "assets.cli", "lineage", client_id], env=demo,
                                cwd=PROJECT_ROOT, capture_output=True, text=True)  # fmt: skip
    finally:
        raw.write_bytes(saved)
    assert broken.returncode == 1 and "MISMATCH" in broken.stdout
