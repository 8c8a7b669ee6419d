"""Run every benchmark in turn (``make bench``); each prints its own table for BENCHMARKS.md."""

from __future__ import annotations

import subprocess
import sys

BENCHES = [
    "bench_synthetic",
    "bench_ingest",
    "bench_features",
    "bench_regime",
    "bench_vol",
    "bench_slippage",
    "bench_models",
    "bench_decisions",
]


def main() -> int:
    failed = []
    for name in BENCHES:
        print(f"\n# {name}\n", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
