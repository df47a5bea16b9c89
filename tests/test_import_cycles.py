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


def sibling_cycles(graph: grimp.ImportGraph) -> list[str]:
    """Cycles between the sub-packages and modules of one package: ``a.x`` imports
    ``a.y.p`` while ``a.y.q`` imports ``a.x.r`` makes x and y a cycle, even when no
    two modules import each other. Layers are packages, so this is the cycle a
    reader of the tree sees."""
    found = []
    packages = sorted(m for m in graph.modules if graph.find_children(m))
    for package in packages:
        prefix = package + "."
        edges: dict[str, set[str]] = {}
        for importer in graph.modules:
            if not importer.startswith(prefix):
                continue
            source = package + "." + importer[len(prefix) :].split(".")[0]
            for imported in graph.find_modules_directly_imported_by(importer):
                if not imported.startswith(prefix):
                    continue
                target = package + "." + imported[len(prefix) :].split(".")[0]
                if target != source:
                    edges.setdefault(source, set()).add(target)
        for start in sorted(edges):
            # Members of start's cycle: what it reaches that reaches it back.
            reach, todo = set(), [start]
            while todo:
                for nxt in edges.get(todo.pop(), ()):
                    if nxt not in reach:
                        reach.add(nxt)
                        todo.append(nxt)
            if start in reach:
                imports = sorted(edges[start])
                found.append(f"{start} is in a cycle among {package}'s parts (imports {imports})")
    return found


def test_there_is_no_cycle_between_the_parts_of_a_package() -> None:
    cycles = sibling_cycles(import_graph())
    assert not cycles, "\n".join(cycles)
