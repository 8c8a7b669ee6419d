"""The house by stage: a stage of ``mem_pipeline/`` imports only itself and the stages below it, and no two
modules import each other, even through others or inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import mem_pipeline

PACKAGE = Path(mem_pipeline.__file__).resolve().parent
#: From the bottom up; a stage may import the stages left of it.
LAYERS = ("core", "ingest", "features", ("models", "memory"), "risk", "execution", "decisions", "backtest", "cli")


def rank(stage: str) -> int:
    for position, layer in enumerate(LAYERS):
        if stage == layer or (isinstance(layer, tuple) and stage in layer):
            return position
    raise AssertionError(f"mem_pipeline/{stage} is not a stage of LAYERS: add it where it belongs")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The ``mem_pipeline`` modules ``path`` imports anywhere in its source (``from a import b`` counts ``a.b``
    when that is a module, else ``a``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("mem_pipeline"):
                continue
            children = {f"{node.module}.{a.name}" for a in node.names} & known
            found |= children or ({node.module} & known)
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {name: imported_modules(path, known) - {name} for name, path in paths.items()}


def test_a_stage_imports_only_itself_and_the_stages_below() -> None:
    upward = []
    for module, targets in graph().items():
        parts = module.split(".")
        if len(parts) < 3:
            continue  # mem_pipeline/__init__ and top-level modules: none are expected
        for target in targets:
            theirs = target.split(".")
            if len(theirs) >= 2 and theirs[1] != parts[1] and rank(theirs[1]) >= rank(parts[1]):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_every_module_lives_in_a_stage() -> None:
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert loose == []
    for stage in (p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        rank(stage)


def find_circles(edges: dict[str, set[str]]) -> list[list[str]]:
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                circles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return circles


def test_no_import_circles() -> None:
    assert find_circles(graph()) == []


def test_the_checks_see_an_upward_import_and_a_circle(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from mem_pipeline.decisions import decide\n\ndef f():\n    from mem_pipeline.risk import kelly\n"
    )
    known = {"mem_pipeline.decisions.decide", "mem_pipeline.risk.kelly", "mem_pipeline.risk"}
    assert imported_modules(source, known) == {"mem_pipeline.decisions.decide", "mem_pipeline.risk.kelly"}
    assert rank("decisions") > rank("risk") > rank("core")
    assert find_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
