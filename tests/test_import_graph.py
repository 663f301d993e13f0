"""The package's import graph has no circles and no module imports another's private names.

Run as a script (``python tests/test_import_graph.py``) to print the graph's cycles and private imports.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import networkx as nx

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "memflow"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_own_helper_module(module: str, source: str) -> bool:
    """A package's private helper module (``pkg/_common.py``) is shared by the modules of that package."""
    package, _, leaf = source.rpartition(".")
    return leaf.startswith("_") and module.startswith(package + ".")


def import_graph() -> tuple[nx.DiGraph, list[tuple[str, str, str]]]:
    """Module-level and function-level imports inside memflow, and imports of another module's ``_names``."""
    modules = {_module_name(p): p for p in PACKAGE_ROOT.rglob("*.py")}
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(modules)
    private: list[tuple[str, str, str]] = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("memflow"):
                        target = alias.name
                        while target not in modules and "." in target:
                            target = target.rsplit(".", 1)[0]
                        if target in modules and target != module:
                            graph.add_edge(module, target)
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, is_package, node)
                if not source.startswith("memflow"):
                    continue
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    target = submodule if submodule in modules else source
                    while target not in modules and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target in modules and target != module:
                        graph.add_edge(module, target)
                    is_private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if is_private and not _is_own_helper_module(module, source):
                        private.append((module, source, alias.name))
    return graph, private


def _cycles(graph: nx.DiGraph) -> list[list[str]]:
    # Edges into a package's __init__ from its own submodules are re-export plumbing, not design arrows.
    pruned = graph.copy()
    for source, target in list(graph.edges):
        if source.startswith(target + "."):
            pruned.remove_edge(source, target)
    return [sorted(c) for c in nx.strongly_connected_components(pruned) if len(c) > 1]


def test_no_import_cycles() -> None:
    graph, _ = import_graph()
    assert _cycles(graph) == []


def test_no_imports_of_another_modules_private_names() -> None:
    _, private = import_graph()
    assert private == []


if __name__ == "__main__":
    graph, private = import_graph()
    print(f"{graph.number_of_nodes()} modules, {graph.number_of_edges()} import edges")
    cycles = _cycles(graph)
    print(f"{len(cycles)} import cycle(s)")
    for cycle in cycles:
        print("  cycle:", " <-> ".join(cycle))
    print(f"{len(private)} import(s) of another module's private names")
    for module, source, name in private:
        print(f"  {module} imports {source}.{name}")
    sys.exit(1 if cycles or private else 0)
