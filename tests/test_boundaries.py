"""The package boundaries the architecture promises, checked on the source and at import."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

FORBIDDEN = {
    "pneumo_core": {"ray"},
    "spaces": {"tensorflow", "keras"},
}


def imported_roots(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {(str(path), a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path), node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_never_imports_forbidden_frameworks(package):
    bad = sorted((p, m) for p, m in imported_roots(package) if m in FORBIDDEN[package])
    assert not bad, f"{package} imports {bad}"


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
