"""The project's modules import one another without a cycle.

The import graph of bench/, policies/, quantizers/ and reports/ is built from the source with `ast`:
an edge for every import of a project module (`from package import name` counts as an import of
the module package.name where there is one). Module-level imports, those that run when the module
is imported (in a class body or an `if` too), must form no cycle. An import inside a function runs
later and may close a cycle only with a comment that says why, on its line or the line above.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "policies", "quantizers", "reports")
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def modules() -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(tree: ast.Module) -> list[tuple[ast.stmt, bool]]:
    """Every import statement with whether it runs when the module is imported (not in a function)."""
    found = []

    def visit(node: ast.AST, at_import: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, at_import))
            visit(child, at_import and not isinstance(child, FUNCTIONS))

    visit(tree, True)
    return found


def targets(node: ast.stmt, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The project modules an import statement of `module` imports."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    base = node.module or ""
    if node.level:  # relative: from the module's package, up level - 1 packages
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    found = {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return found & known


Graph = dict[str, dict[str, list[tuple[int, bool]]]]  # module -> imported module -> (line, at import)


def graph() -> Graph:
    """Every import of a project module by a project module."""
    found = modules()
    edges: Graph = {}
    for module, path in found.items():
        edges[module] = {}
        for node, at_import in imports(ast.parse(path.read_text())):
            for target in targets(node, module, path.name == "__init__.py", set(found)) - {module}:
                edges[module].setdefault(target, []).append((node.lineno, at_import))
    return edges


def at_import(edges: Graph) -> Graph:
    """The imports that run when their module is imported."""
    return {module: {target: found for target, imports_ in targets_.items()
                     if (found := [(line, True) for line, running in imports_ if running])}
            for module, targets_ in edges.items()}


def cycle(edges: Graph) -> list[str] | None:
    """One cycle of the graph (its modules in import order, the first repeated at the end), or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(edges):
        if module not in state and (found := visit(module)):
            return found
    return None


def reaches(edges: Graph, start: str, goal: str) -> bool:
    """Whether `start` imports `goal`, at one remove or more."""
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module == goal:
            return True
        if module not in seen:
            seen.add(module)
            todo.extend(edges[module])
    return False


def test_module_level_imports_form_no_cycle():
    edges = graph()
    assert len(edges) > 50  # the packages were found
    found = cycle(at_import(edges))
    assert found is None, f"import cycle: {' -> '.join(found)}"


def test_an_import_in_a_function_closes_a_cycle_only_with_a_comment_that_says_why():
    edges, sources = graph(), {module: path.read_text().splitlines() for module, path in modules().items()}
    silent = [f"{module} imports {target} in a function (line {line})"
              for module, targets_ in edges.items() for target, imports_ in targets_.items()
              for line, running in imports_ if not running and reaches(edges, target, module)
              and not any("#" in text for text in sources[module][max(0, line - 2):line])]
    assert not silent, "imports that close a cycle without saying why: " + "; ".join(silent)


def test_the_check_finds_a_cycle():
    assert cycle({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b": []}, "b": {}, "c": {"a": []}}) is None
