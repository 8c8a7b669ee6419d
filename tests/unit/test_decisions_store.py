"""The append-only decision store and the version's inputs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from mem_pipeline.decisions.sample_inputs import DECISION_DATE, decide_frames, make_inputs, sqrt_cost_model
from mem_pipeline.decisions.store import INDEX, DecisionStore
from mem_pipeline.decisions.types import DecisionError
from mem_pipeline.decisions.version import code_version, frame_digest, version_of


def _decision(seed: int = 0, **kwargs: object):
    inputs = make_inputs(n_symbols=10, seed=seed)
    return decide_frames(DECISION_DATE, cost_model=sqrt_cost_model, **inputs, **kwargs)[0]


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path)
    decision = _decision()
    path = store.write(decision)
    assert path == tmp_path / DECISION_DATE.isoformat() / f"{decision.version}.parquet"
    back = store.read(decision.version)
    assert back.version == decision.version and back.decision_date == decision.decision_date
    assert back.orders.equals(decision.orders)
    assert back.targets.equals(decision.targets)
    assert back.limits == decision.limits
    assert back.report == decision.report and back.manifest == decision.manifest
    assert store.read_orders(decision.version).equals(decision.orders)


def test_the_same_inputs_twice_give_the_same_file(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path)
    first = store.write(_decision())
    before = first.read_bytes(), first.stat().st_mtime_ns, first.stat().st_ino
    again = store.write(_decision())  # recomputed from scratch: identical bytes, a no-op
    assert again == first
    assert (first.read_bytes(), first.stat().st_mtime_ns, first.stat().st_ino) == before
    assert store.versions(DECISION_DATE) == [_decision().version]


def test_conflicting_content_under_an_existing_version_is_refused(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path)
    decision = _decision()
    path = store.write(decision)
    original = path.read_bytes()
    tampered = dataclasses.replace(decision, orders=decision.orders.with_columns(pl.col("quantity") * 2))
    with pytest.raises(DecisionError, match="already holds different content"):
        store.write(tampered)
    assert path.read_bytes() == original
    assert not list(path.parent.glob(".staging-*"))


def test_versions_are_kept_in_write_order_and_never_deleted(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path)
    versions = [store.write(_decision(seed=s)).stem for s in (3, 1, 2)]
    store.write(_decision(seed=1))  # rewriting an old one does not make it the latest
    assert store.versions(DECISION_DATE) == versions
    assert store.latest(DECISION_DATE) == versions[-1]
    assert store.latest(DECISION_DATE + dt.timedelta(days=1)) is None
    assert sorted(p.stem for p in (tmp_path / DECISION_DATE.isoformat()).glob("*.parquet")) == sorted(versions)


def test_unknown_versions_raise(tmp_path: Path) -> None:
    with pytest.raises(DecisionError, match="no decision"):
        DecisionStore(tmp_path).read("0123456789abcdef")
    with pytest.raises(DecisionError, match="not a decision version"):
        DecisionStore(tmp_path).read("../../etc/passwd")


def test_version_is_a_hash_of_the_canonical_manifest() -> None:
    a = {"b": 1, "a": [1.5, "x"], "c": {"z": 1, "y": 2}}
    b = {"c": {"y": 2, "z": 1}, "a": [1.5, "x"], "b": 1}
    assert version_of(a) == version_of(b)
    assert version_of(a) != version_of({**a, "b": 2})


def test_frame_digest_ignores_row_and_column_order_but_not_values_or_types() -> None:
    f = pl.DataFrame({"s": ["a", "b", None], "x": [1.0, 2.0, None]})
    assert frame_digest(f) == frame_digest(f.reverse().select("x", "s"))
    assert frame_digest(f) != frame_digest(f.with_columns(pl.col("x") + 1e-12))
    assert frame_digest(f) != frame_digest(f.with_columns(pl.col("x").cast(pl.Float32)))
    assert frame_digest(f) != frame_digest(f.rename({"x": "y"}))


def _package(root: Path) -> None:
    """A package ``mem_pipeline`` whose decisions import a model module (directly) and a risk module (through it)."""
    files = {
        "decisions/decide.py": "from mem_pipeline.models import signal\n",
        "models/signal.py": "from mem_pipeline.risk.kelly import f\n",
        "risk/kelly.py": "def f(): return 1\n",
        "ingest/lake.py": "X = 1\n",  # nothing of the decision imports it
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_code_version_depends_on_source_bytes_not_on_paths_or_times(tmp_path: Path) -> None:
    one, two = tmp_path / "a" / "mem_pipeline", tmp_path / "b" / "mem_pipeline"
    _package(one)
    _package(two)
    os.utime(two / "risk" / "kelly.py", (0, 0))
    assert code_version(one) == code_version(two)
    (two / "ingest" / "lake.py").write_text("X = 2\n")  # not a dependency of the decision
    assert code_version.__wrapped__(two) == code_version(one)
    (two / "models" / "signal.py").write_text("from mem_pipeline.risk.kelly import f\nY = 2\n")
    assert code_version.__wrapped__(two) != code_version(one)  # prediction code changes the version
    (two / "models" / "signal.py").write_text((one / "models" / "signal.py").read_text())
    (two / "risk" / "kelly.py").write_text("def f(): return 2\n")
    assert code_version.__wrapped__(two) != code_version(one)  # a module reached through another one too
    assert len(code_version()) == 16


# -- a crash between the files and the index line -------------------------------------------------


def _index_entries(root: Path) -> list[tuple[str, str]]:
    """``(date, version)`` of every line of the index, in order (what the ``new_decisions`` sensor reads)."""
    lines = (root / INDEX).read_text(encoding="utf-8").splitlines()
    return [(e["date"], e["version"]) for e in map(json.loads, filter(str.strip, lines))]


def _write_then_crash_before_the_index(store: DecisionStore, decision: Any) -> None:
    """Write ``decision`` with the index unwritable (a directory in its place): the write dies after the
    version's files are linked and before its line is appended, as a process killed there would."""
    index = store.root / INDEX
    kept = index.read_bytes() if index.exists() else None
    index.unlink(missing_ok=True)
    index.mkdir(parents=True)
    with pytest.raises(OSError):
        store.write(decision)
    shutil.rmtree(index)
    if kept is not None:
        index.write_bytes(kept)
    assert store.path(decision.decision_date, decision.version).exists()  # files written ...
    assert store.path(decision.decision_date, decision.version).with_suffix(".json").exists()


def test_writing_again_after_a_crash_before_the_index_line_completes_the_index_once(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path)
    first, crashed = _decision(seed=1), _decision(seed=2)
    store.write(first)
    _write_then_crash_before_the_index(store, crashed)
    day = DECISION_DATE.isoformat()
    assert _index_entries(tmp_path) == [(day, first.version)]  # ... the line not: the sensor never sees it

    path = store.write(crashed)  # the re-run: same inputs, same bytes
    assert path == store.path(DECISION_DATE, crashed.version)
    assert _index_entries(tmp_path) == [(day, first.version), (day, crashed.version)]
    assert store.latest(DECISION_DATE) == crashed.version
    store.write(crashed)
    store.write(first)  # indexed ones are not appended again
    assert _index_entries(tmp_path) == [(day, first.version), (day, crashed.version)]


def test_a_lost_index_line_is_restored_by_writing_the_version_again(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path)
    a, b = _decision(seed=3), _decision(seed=4)
    store.write(a)
    store.write(b)
    index = tmp_path / INDEX
    index.write_text(index.read_text(encoding="utf-8").splitlines(keepends=True)[0], encoding="utf-8")
    store.write(b)
    day = DECISION_DATE.isoformat()
    assert _index_entries(tmp_path) == [(day, a.version), (day, b.version)]
    assert store.latest(DECISION_DATE) == b.version


def _write_when_released(root: str, decision: Any, barrier: Any, slow_check: bool) -> None:
    """Child process: wait for the other writer, then write ``decision``. ``slow_check`` widens the window
    between reading the index and appending to it (were it unlocked, both writers would append)."""
    if slow_check and hasattr(DecisionStore, "_indexed"):
        check = DecisionStore._indexed

        def slow(*args: Any) -> bool:
            found = check(*args)
            time.sleep(0.5)
            return found

        DecisionStore._indexed = staticmethod(slow)  # type: ignore[method-assign]
    barrier.wait(timeout=120)
    DecisionStore(Path(root)).write(decision)


@pytest.mark.parametrize("after_crash", [False, True], ids=["fresh", "after-crash"])
def test_two_processes_writing_the_same_decision_at_once_index_it_exactly_once(
    tmp_path: Path, after_crash: bool
) -> None:
    store = DecisionStore(tmp_path)
    decision = _decision(seed=5)
    if after_crash:
        _write_then_crash_before_the_index(store, decision)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    writers = [
        ctx.Process(target=_write_when_released, args=(str(tmp_path), decision, barrier, after_crash)) for _ in range(2)
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=180)
    assert [w.exitcode for w in writers] == [0, 0]
    assert _index_entries(tmp_path) == [(DECISION_DATE.isoformat(), decision.version)]
    assert store.latest(DECISION_DATE) == decision.version
    assert store.read(decision.version).orders.equals(decision.orders)
