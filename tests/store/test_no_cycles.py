"""The engine's imports form no cycle (issue 17): every module of ``store``
imports only modules that do not, directly or through others, import it back.

import-linter's layer contracts (pyproject.toml) keep the packages in order;
this test also covers the modules inside one package, and counts imports made
inside functions or under ``TYPE_CHECKING`` like any other.
"""

from __future__ import annotations

import grimp


def _cycles(package: str) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph = grimp.build_graph(package)
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & graph.modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_store_has_no_import_cycle() -> None:
    assert _cycles("store") == []


def test_nothing_in_store_imports_the_package_facade() -> None:
    # store/__init__.py imports every sub-package: a module importing it back
    # would be a cycle through the facade.
    graph = grimp.build_graph("store")
    importers = graph.find_modules_that_directly_import("store")
    assert importers == set()
