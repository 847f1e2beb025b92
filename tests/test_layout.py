"""The house rules of gan_cli's layout (docs/developing.md): every import, function-local ones included, runs
down the floors; the model families do not import each other; no module imports itself round a circle; and
no source file grows past about 300 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gan_cli"

#: gan_cli's rooms (top-level modules and packages), lowest floor first: a room imports only rooms of lower floors
FLOORS = [
    {"errors", "lightning_state", "rank_local"},
    {"config", "checkpoint", "text"},
    {"data", "nets"},
    {"metrics", "blending", "visuals", "trackers"},
    {"losses"},
    {"models"},
    {"tricks"},
    {"callbacks", "evaluation", "loggers", "sweeps"},
    {"assembly", "fine_tuning"},
    {"commands"},
    {"cli"},
    {"__main__"},
]
FAMILIES = {"gans", "translation", "text_to_image", "classic"}
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports() -> list[tuple[str, str, int]]:
    """(importing module, imported gan_cli module, line) for every import statement in gan_cli."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gan_cli"):
                targets = [node.module]
                # `from gan_cli.pkg import module` imports that module
                targets += [f"{node.module}.{alias.name}" for alias in node.names
                            if (PACKAGE.parent / f"{node.module}.{alias.name}".replace(".", "/")).with_suffix(".py").exists()]
                found += [(here, target, node.lineno) for target in targets]
            elif isinstance(node, ast.Import):
                found += [(here, alias.name, node.lineno) for alias in node.names if alias.name.startswith("gan_cli")]
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def floor(module: str) -> int:
    name = room(module)
    for level, rooms in enumerate(FLOORS):
        if name in rooms:
            return level
    raise AssertionError(f"{module} is in no floor of tests/test_layout.py: add its room to FLOORS")


def family(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "models" and parts[2] in FAMILIES else None


def test_every_import_runs_down_the_floors():
    upward = [f"{a} -> {b} (line {line})" for a, b, line in imports()
              if room(b) not in ("__init__", room(a)) and floor(b) >= floor(a)]
    assert not upward, "imports that run up (or sideways) a floor:\n" + "\n".join(upward)


def test_model_families_do_not_import_each_other_and_the_shared_models_import_no_family():
    crossing = [f"{a} -> {b} (line {line})" for a, b, line in imports()
                if room(a) == "models" and family(b) and family(a) != family(b)]
    assert not crossing, "\n".join(crossing)


def test_no_module_imports_itself_round_a_circle():
    graph: dict[str, set[str]] = {}
    for a, b, _ in imports():
        if a != b:
            graph.setdefault(a, set()).add(b)
    circles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not circles, "\n".join(circles)


@pytest.mark.parametrize("folder", ["gan_cli", "benchmarks", "tools", "tests"])
def test_no_source_file_is_over_300_lines(folder):
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / folder).rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these files (at most {MAX_LINES} lines): {long}"
