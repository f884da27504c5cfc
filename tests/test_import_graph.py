"""Imports between asynclog's modules go one way: no module imports another that imports it back.

The graph is read from the source with `ast`: every `import asynclog.x`, `from .x import y`,
`from . import x` and `from .. import y`, at the top of a module or inside a function (a lazy
import closes a cycle as surely as one at the top). Imports under `if TYPE_CHECKING:` are left
out: they never run, and annotations may refer both ways. An edge goes to the module named, or
to the package when the imported name is an attribute of it (`from .. import __version__`).
The package `__init__` that importing `a.b.c` runs first is not drawn as an edge: every package
importing its own modules would otherwise be a cycle with each of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import asynclog

PACKAGE = Path(asynclog.__file__).resolve().parent

KNOWN_CYCLES: set[frozenset[str]] = set()
"""The cycles there are today, each as the set of modules in it. The test fails if one is
added or grows, and also when one is removed: then take it out of this set."""


def _module_name(path: Path) -> str:
    parts = [PACKAGE.name, *path.relative_to(PACKAGE).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement below `node`, except in the body of `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            found.append(child)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                found.extend(_imports(ast.Module(body=[other], type_ignores=[])))
            continue
        found.extend(_imports(child))
    return found


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The modules of the package that one import statement of `module` imports."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
        return {name for name in names if name in MODULES}
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        parts = package.split(".")
        base_parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*base_parts, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    targets = set()
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        targets.add(submodule if submodule in MODULES else base)
    return {target for target in targets if target in MODULES}


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges: set[str] = set()
        for node in _imports(tree):
            edges |= _targets(module, node)
        edges.discard(module)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_graph_is_read_from_every_module() -> None:
    graph = import_graph()
    assert {"asynclog", "asynclog._config", "asynclog.backends.file"} <= set(graph)
    assert "asynclog._config_data" in graph["asynclog._config"]
    assert "asynclog._backend_registry" in graph["asynclog.backends.file"]
    assert "asynclog._cli" in graph["asynclog.__main__"]  # a lazy import counts
    assert "asynclog._version" in graph["asynclog.backends.otlp"]  # a lazy import counts too
    assert "asynclog._manager" not in graph["asynclog._bound"]  # under TYPE_CHECKING: not


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == {frozenset({"a", "b", "c"})}


def test_config_and_loading_import_one_way() -> None:
    graph = import_graph()
    assert "asynclog._config" in graph["asynclog._loading"]
    assert "asynclog._loading" not in graph["asynclog._config"]
    for module in ("asynclog._config_data", "asynclog._backend_registry"):
        assert not graph[module] & {"asynclog._config", "asynclog._loading"}, module
    assert not {m for m in graph["asynclog._backend_registry"] if ".backends" in m}


def test_no_new_import_cycle() -> None:
    assert cycles(import_graph()) == KNOWN_CYCLES
