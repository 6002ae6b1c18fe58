"""The house: stages import only from the stages before them (import-linter's layers contract in
pyproject.toml), no import circle, no private name imported across modules, and library
modules import their stages at the top (only the entry points, the command line and the
service, defer)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src" / "allocator"


def _lint_imports(cwd: Path, src: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}, timeout=300)


def test_the_layers_contract_holds():
    result = _lint_imports(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_layers_contract_fails_on_an_upward_import(tmp_path):
    """A deliberate violation: the model importing the command line breaks the contract."""
    shutil.copytree(SRC, tmp_path / "src" / "allocator")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    problem = tmp_path / "src" / "allocator" / "model" / "problem.py"
    problem.write_text(problem.read_text() + "\nfrom allocator.cli import app  # noqa: E402,F401\n")
    result = _lint_imports(tmp_path, tmp_path / "src")
    assert result.returncode != 0
    assert "allocator.model is not allowed to import allocator.cli" in result.stdout


def test_no_import_circle():
    graph = grimp.build_graph("allocator")
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert circles == []


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("allocator"):
            yield node


def test_no_private_name_is_imported_across_modules():
    crossing = [f"{path.relative_to(SRC)}:{node.lineno} {node.module}.{alias.name}"
                for path in sorted(SRC.rglob("*.py")) for node in _imports(path) for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert crossing == []


def test_library_modules_import_their_stages_at_the_top():
    """Deferred imports of allocator's own modules are the entry points' alone: the command line
    loads a command's stage only when that command runs, and the service keeps its capped
    checking processes and forked workers small (allocator.api)."""
    deferred = [f"{path.relative_to(SRC)}:{node.lineno} {node.module}"
                for path in sorted(SRC.rglob("*.py")) if not {"cli", "api"} & set(path.relative_to(SRC).parts)
                for node in _imports(path) if node.col_offset > 0]
    assert deferred == []
