"""The dbt warm-up the warm run launcher preloads: it starts no thread, and dbt runs in a process forked after it
(a thread pool started before the fork is missing in the child and dbt waits on it forever)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from mem_pipeline.core.paths import PROJECT_ROOT

SCRIPT = textwrap.dedent("""
    import multiprocessing as mp, os, sys

    def threads():
        return len(os.listdir("/proc/self/task"))

    def parse_in_child(target):
        from dbt.cli.main import dbtRunner
        from mem_pipeline.core.paths import DBT_PROJECT_DIR
        result = dbtRunner().invoke(["parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
                                     str(DBT_PROJECT_DIR), "--target-path", target, "--log-path", target])
        sys.exit(0 if result.success else 3)

    if __name__ == "__main__":
        import assets.definitions  # what the warm process imports first
        before = threads()
        import assets.dbt_warmup
        print("threads", before, threads(), flush=True)
        ctx = mp.get_context("fork")  # the forkserver forks its children from this state
        child = ctx.Process(target=parse_in_child, args=(sys.argv[1],))
        child.start()
        child.join(120)
        if child.is_alive():
            child.kill()
            print("child hung", flush=True)
        print("child exit", child.exitcode, flush=True)
""")


def test_the_warmup_starts_no_thread_and_dbt_runs_in_a_fork_after_it(tmp_path: Path) -> None:
    env = {**os.environ, "MEM_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "target")], env=env, cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = dict(line.rsplit(" ", 1) for line in out.stdout.splitlines() if line.startswith(("threads", "child")))
    before, after = out.stdout.split("threads ", 1)[1].split()[:2]
    assert "warm-up skipped" not in out.stderr, out.stderr[-2000:]
    assert after == before
    assert lines.get("child exit") == "0", out.stdout + out.stderr[-2000:]
