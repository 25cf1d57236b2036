"""The package boundaries the architecture promises, checked on the source and at import.

Arrows point one way (docs/architecture.md): ``search`` -> ``results`` -> ``pneumo_core``,
``search`` -> ``spaces``, and every package -> ``pneumo_contracts`` -> ``pneumo_errors``.
Inside ``results``, four rooms import downward only: ``final`` -> ``serving`` -> ``report``
-> ``board``. Every import counts, those inside functions too; and no module of the project
imports itself back through others.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

FORBIDDEN = {
    "pneumo_core": {"ray"},
    "spaces": {"tensorflow", "keras"},
    "pneumo_errors": {"tensorflow", "keras", "ray", "optuna"},
    "pneumo_contracts": {"tensorflow", "keras", "ray", "optuna"},
}

#: The project's packages each package may import (itself aside).
ALLOWED = {
    "pneumo_errors": set(),
    "pneumo_contracts": {"pneumo_errors"},
    "pneumo_core": {"pneumo_errors", "pneumo_contracts"},
    "spaces": {"pneumo_errors", "pneumo_contracts"},
    "results": {"pneumo_errors", "pneumo_contracts", "pneumo_core"},
    "search": {"pneumo_errors", "pneumo_contracts", "pneumo_core", "spaces", "results"},
}
PACKAGES = set(ALLOWED)

#: The rooms of ``results`` and the other rooms each may import (itself aside).
ROOMS = {
    "board": set(),
    "report": {"board"},
    "serving": {"board", "report"},
    "final": {"board", "report", "serving"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool) -> set[str]:
    """Every module ``source`` imports, at any depth (functions included), absolute."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}  # submodules
    return found


def project_imports() -> dict[str, set[str]]:
    """Module -> the project's modules it imports."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = module_name(path)
            found = imports_of(path.read_text(), name, path.name == "__init__.py")
            graph[name] = {m for m in found if m.split(".")[0] in PACKAGES}
    return graph


def arrows_against_the_rule(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for module, targets in graph.items():
        own = module.split(".")[0]
        for target in targets:
            root = target.split(".")[0]
            if root != own and root not in ALLOWED[own]:
                bad.append((module, target))
    return sorted(bad)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_never_imports_forbidden_frameworks(package):
    bad = sorted(
        (module, target)
        for module, targets in (
            (module_name(p), imports_of(p.read_text(), module_name(p), p.name == "__init__.py"))
            for p in (REPO / package).rglob("*.py")
        )
        for target in targets
        if target.split(".")[0] in FORBIDDEN[package]
    )
    assert not bad, f"{package} imports {bad}"


def test_every_package_arrow_points_down():
    bad = arrows_against_the_rule(project_imports())
    assert not bad, f"imports against the arrows: {bad}"


def room_of(module: str) -> str | None:
    """``results.final.stage`` -> ``final``; None outside ``results`` or for the package."""
    parts = module.split(".")
    return parts[1] if parts[0] == "results" and len(parts) > 1 else None


def arrows_between_rooms(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for module, targets in graph.items():
        own = room_of(module)
        if own is None:
            continue
        for target in targets:
            room = room_of(target)  # results.X with X no room: a name of results/__init__
            if room in ROOMS and room != own and room not in ROOMS.get(own, set()):
                bad.append((module, target))
    return sorted(bad)


def test_results_is_four_rooms():
    """Every module of ``results`` lives in one of the four rooms (the package aside)."""
    loose = sorted(
        module_name(p)
        for p in (REPO / "results").rglob("*.py")
        if room_of(module_name(p)) not in ROOMS and module_name(p) != "results"
    )
    assert not loose, f"modules outside the rooms {sorted(ROOMS)}: {loose}"
    for room in ROOMS:
        assert (REPO / "results" / room / "__init__.py").exists(), room


def test_every_room_arrow_points_down():
    bad = arrows_between_rooms(project_imports())
    assert not bad, f"imports between the rooms of results against the arrows: {bad}"


def test_the_room_check_sees_an_upward_import():
    graph = {"results.board.view": {"results.final.stage"}, "results.final.stage": set()}
    assert arrows_between_rooms(graph) == [("results.board.view", "results.final.stage")]


def test_errors_have_one_import_path():
    """Errors come from ``pneumo_errors`` only (no re-export elsewhere)."""
    assert not (REPO / "pneumo_core" / "errors.py").exists()
    graph = project_imports()
    assert not [m for m, targets in graph.items() if "pneumo_core.errors" in targets]


def test_the_arrow_check_sees_imports_inside_functions():
    source = "def f():\n    from search.config import load_experiment\n"
    graph = {"results.final.stage": {m for m in imports_of(source, "results.final.stage", False)}}
    assert ("results.final.stage", "search.config") in arrows_against_the_rule(graph)
    relative = imports_of("from ..models import registry\n", "pneumo_core.train.loop", False)
    assert "pneumo_core.models.registry" in relative


def test_no_module_imports_itself_back():
    """No import circle between modules (a package importing its own submodules aside)."""
    graph = project_imports()
    modules = set(graph)
    edges = {
        m: {t for t in targets if t in modules and not m.startswith(f"{t}.") and t != m}
        for m, targets in graph.items()
    }
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import circles: {cycles}"


def test_configs_and_registry_load_without_tensorflow():
    code = (
        "import sys\n"
        "import pneumo_core.train.config, pneumo_core.models, pneumo_core.data, search.cli\n"
        "from pneumo_core.models import list_models\n"
        "assert len(list_models()) >= 8\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'ray') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
