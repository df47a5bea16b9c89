"""No import cycles in the product or the tools (docs/engine.md, style: "move the
shared piece down instead of importing inside a function").

The import graph is grimp's (the library under import-linter), built from the
source of every module of ``store``, ``sources``, ``mount``, ``cli`` and ``tools``.
It counts every import statement: at module level, inside functions (an import
moved into a function to dodge a cycle is still the cycle) and under
``TYPE_CHECKING`` (a cycle of types is a cycle of design). Every strongly
connected component of more than one module is a cycle; the failure lists each
one with the imports that close it.
"""

from __future__ import annotations

import grimp

ROOTS = ("store", "sources", "mount", "cli", "tools")


def import_graph() -> grimp.ImportGraph:
    # No cache: grimp's would be written into the working tree.
    return grimp.build_graph(*ROOTS, include_external_packages=False, cache_dir=None)


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """The components of more than one module: a module's component is itself plus
    every module it reaches that also reaches it."""
    remaining = set(graph.modules)
    components = []
    while remaining:
        module = remaining.pop()
        component = {module} | (
            graph.find_upstream_modules(module) & graph.find_downstream_modules(module)
        )
        remaining -= component
        if len(component) > 1:
            components.append(sorted(component))
    return sorted(components)


def describe(graph: grimp.ImportGraph, component: list[str]) -> str:
    members = set(component)
    lines = [" <-> ".join(component)]
    for importer in component:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                lines.append(f"    {importer}:{detail['line_number']}: {detail['line_contents']}")
    return "\n".join(lines)


def test_the_graph_covers_the_product_and_the_tools() -> None:
    # Guards the test below against an empty or partial graph.
    graph = import_graph()
    assert {module.split(".")[0] for module in graph.modules} == set(ROOTS)
    assert "tools.graphsim.services.drive" in graph.modules
    assert len(graph.modules) > 200


def test_there_is_no_import_cycle() -> None:
    graph = import_graph()
    cycles = strongly_connected(graph)
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(
        describe(graph, component) for component in cycles
    )
