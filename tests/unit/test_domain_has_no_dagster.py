"""The domain package stays orchestration-free: no module under ``mem_pipeline/`` imports dagster."""

from __future__ import annotations

import ast
from pathlib import Path

import mem_pipeline

PACKAGE = Path(mem_pipeline.__file__).resolve().parent


def dagster_imports(source: str, filename: str) -> list[int]:
    """Line numbers of ``import dagster...`` / ``from dagster... import`` anywhere in the module (also nested)."""
    lines = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(n == "dagster" or n.startswith(("dagster.", "dagster_")) for n in names):
            lines.append(node.lineno)
    return lines


def test_no_module_in_mem_pipeline_imports_dagster() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) >= 10, f"expected the whole package under {PACKAGE}"
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in modules
        for line in dagster_imports(path.read_text(encoding="utf-8"), str(path))
    ]
    assert offenders == [], "mem_pipeline must not import dagster: " + ", ".join(offenders)


def test_the_detector_finds_every_form() -> None:
    source = (
        "import os\n"
        "import dagster\n"
        "import dagster.core as c, json\n"
        "from dagster import asset\n"
        "from dagster._core import x\n"
        "def f():\n"
        "    import dagster_dbt\n"
        "from .dagster import y\n"  # a relative module that happens to be called dagster: not the library
        "import dagsterish\n"
    )
    assert dagster_imports(source, "<test>") == [2, 3, 4, 5, 7]
