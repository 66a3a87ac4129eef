"""The task type packages import without cycles: each module on its own in a fresh
interpreter, and no cycle among their import statements, type-only ones included."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "tasks"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(TASKS.rglob("*.py"))}


def imports_of(name: str, path: Path) -> set[str]:
    """The ``tasks`` modules ``name`` imports anywhere in its text (under ``TYPE_CHECKING``
    and inside functions too): a type-only cycle is still two modules that need each other."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # "from tasks.x import gold" imports the module tasks.x.gold; "from tasks.x
            # import TASK" imports tasks.x itself.
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in MODULES else base)
    return {imported for imported in found if imported in MODULES and imported != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as the path that closes it, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph[node]):
            if cycle := visit(nxt):
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        if cycle := visit(node):
            return cycle
    return None


def test_no_import_cycle_among_the_task_modules():
    graph = {name: imports_of(name, path) for name, path in MODULES.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_sees_a_type_only_cycle(tmp_path):
    # The check above can only fail if a cycle hidden behind TYPE_CHECKING is seen.
    checks = tmp_path / "checks.py"
    checks.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from tasks.contract_review.task import Finding\n"
    )
    edges = imports_of("tasks.contract_review.checks", checks)
    graph = {name: imports_of(name, path) for name, path in MODULES.items()}
    graph["tasks.contract_review.checks"] = edges
    assert edges == {"tasks.contract_review.task"}
    assert find_cycle(graph) is not None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_imports_first_in_a_fresh_interpreter(name):
    done = subprocess.run(
        [sys.executable, "-c", f"import {name}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
