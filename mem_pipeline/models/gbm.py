"""LightGBM parameters that make a fit reproducible bit for bit (same data, same booster, same artifact hash)."""

from __future__ import annotations

from typing import Any

# Results depend on the thread count; one thread keeps artifacts content-addressable across machines.
NUM_THREADS = 1


def reproducible_params(
    objective: str, *, learning_rate: float, num_leaves: int, min_child_samples: int, seed: int, **extra: Any
) -> dict[str, Any]:
    return {
        "objective": objective,
        "learning_rate": learning_rate,
        "num_leaves": num_leaves,
        "min_child_samples": min_child_samples,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": NUM_THREADS,
        "verbosity": -1,
        **extra,
    }
