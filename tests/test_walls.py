"""The package's walls: the torch-only core loads no astronomy stack, and no module imports cycle.

``df/`` and ``potential/`` are pure torch (+ numpy): importing them must not load galpy, astropy
or matplotlib, which live at the edges (``data/``, ``units`` conversions, ``galpy_potential``,
exports, plots). The import graph is read from the source with ``ast``, function-level imports
included (a deferred import is still a dependency), and must have no cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import deeppot_galpy

PACKAGE = Path(deeppot_galpy.__file__).parent


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its __init__)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its source."""
    mods = modules()
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from pkg import sub` imports the module pkg.sub; other names come from pkg
                subs = {f"{source}.{alias.name}" for alias in node.names} & mods.keys()
                targets |= subs
                if len(subs) < len(node.names):
                    targets.add(source)
        graph[name] = {t for t in targets if t in mods and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_a_function_level_cycle():
    # the shape of the cycle this test guards against: a -> b at module level, b -> a inside
    # a function; also checks that the graph reader sees function-level and relative imports
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    assert "deeppot_galpy.storage" in graph["deeppot_galpy.checkpoint"]
    assert "deeppot_galpy.df" in graph["deeppot_galpy.rundir"]  # imported inside a function
    assert "deeppot_galpy.df.ensemble" in graph["deeppot_galpy.df"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_storage_imports_no_model_code():
    deps = import_graph()["deeppot_galpy.storage"]
    assert deps == set(), f"storage.py must sit below every other module; it imports {deps}"


@pytest.mark.parametrize("module", ["deeppot_galpy.df", "deeppot_galpy.potential"])
def test_torch_core_loads_no_astronomy_stack(module):
    # a fresh interpreter: this test process has long since imported everything
    code = (
        f"import sys, {module}\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'galpy', 'astropy', 'matplotlib'})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == [], f"importing {module} loaded {done.stdout.strip()}"


def test_package_names_are_lazy_and_complete():
    code = (
        "import sys, deeppot_galpy as d\n"
        "assert 'deeppot_galpy.pipeline' not in sys.modules, 'the front door imported eagerly'\n"
        "missing = [n for n in d.__all__ if getattr(d, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert set(d.__all__) <= set(dir(d))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    with pytest.raises(AttributeError, match="no attribute 'fitt'"):
        deeppot_galpy.fitt  # noqa: B018
