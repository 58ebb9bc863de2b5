"""The shape of the package (docs/ARCHITECTURE.md), checked over the import graph of explain/.

Every ``import`` and ``from ... import`` of every module is read with ``ast``, at module level
and inside functions, and resolved to the module of ``explain`` it names (``from .x import y``
is an edge to ``explain.x.y`` when that is a module, else to ``explain.x``: a package's
``__init__`` face counts as the package). The implicit import of parent packages is not an
edge. On that graph:

* no cycle, between modules or between the concepts (``explain.<concept>``) they belong to;
* no upward import: a module imports only its own layer or the layers below (``LAYERS``);
* the recipes (``explain_models``) are imported only by the command line (``explain/cli/``);
* no module over ``MAX_LINES`` lines unless docs/ARCHITECTURE.md lists it with a reason, as
  a line ``- `explain/x.py` (N lines): reason``.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "explain"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
MAX_LINES = 500

#: Layers, lowest first: concept (``explain.<concept>``, the first name below ``explain``) ->
#: layer. ``explain`` itself is the package face over everything but the command line.
LAYERS = {
    **dict.fromkeys(("errors", "provenance", "checks", "staging", "hooks", "text", "families",
                     "_hf", "_sklearn", "loading", "nets", "datasets", "plotting", "results",
                     "progress"), 0),
    **dict.fromkeys(("attention", "attribution", "fairness"), 1),
    **dict.fromkeys(("report", "run"), 2),
    "": 3,  # explain/__init__.py, the face of the package
    **dict.fromkeys(("cli", "__main__"), 4),
}
LAYER_NAMES = ("foundation", "analyses", "report", "the package face", "cli")

_NOTE = re.compile(r"^\s*[-*]\s+`(explain/[^`]+\.py)`\s+\((\d[\d,]*) lines\):\s*\S")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of explain/."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _package_of(module: str) -> str:
    """The package a module's relative imports start from."""
    is_package = MODULES[module].name == "__init__.py"
    return module if is_package else module.rpartition(".")[0]


def _resolve(name: str) -> str | None:
    """The module of explain that ``name`` (a dotted name) imports: its longest existing prefix."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports(module: str) -> Iterator[tuple[str, int]]:
    """(imported dotted name, line) for every import in ``module``, wherever it is."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"), str(MODULES[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(module).split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            for alias in node.names:  # a submodule when there is one, else the module itself
                yield f"{prefix}.{alias.name}" if alias.name != "*" else prefix, node.lineno
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__")):
            yield node.args[0].value, node.lineno


def _graph() -> dict[str, dict[str, int]]:
    """module -> {imported module of explain: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for module in MODULES:
        edges = graph.setdefault(module, {})
        for name, line in _imports(module):
            target = _resolve(name) if name.split(".")[0] == "explain" else None
            if target is not None and target != module:
                edges.setdefault(target, line)
    return graph


GRAPH = _graph()


def _concept(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each strongly connected component of more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = []
    for component in components:
        members = set(component)
        start = component[0]
        paths = {start: [start]}
        frontier = [start]
        cycle = None
        while frontier and cycle is None:  # breadth first: the shortest way back to start
            following = []
            for node in frontier:
                for target in sorted(graph.get(node, ())):
                    if target == start:
                        cycle = paths[node] + [start]
                        break
                    if target in members and target not in paths:
                        paths[target] = paths[node] + [target]
                        following.append(target)
                if cycle:
                    break
            frontier = following
        cycles.append(cycle)
    return cycles


def test_the_graph_is_read():
    # the checks below mean something only if the parser sees the imports that exist
    assert GRAPH["explain"], "explain/__init__.py imports nothing?"
    assert "explain.hooks" in GRAPH["explain"]
    assert any(target.startswith("explain.loading") for edges in GRAPH.values()
               for target in edges)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}) == [["a", "b", "c",
                                                                                "a"]]


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if _concept(m) not in LAYERS)
    assert not unplaced, (f"modules of no layer: {', '.join(unplaced)}; add their concept to "
                          f"LAYERS in tests/test_architecture.py (and to docs/ARCHITECTURE.md)")


def test_no_import_cycle_between_modules():
    cycles = _cycles({module: set(edges) for module, edges in GRAPH.items()})
    assert not cycles, "import cycles:\n" + "\n".join(
        " -> ".join(f"{a} (line {GRAPH[a][b]})" for a, b in itertools.pairwise(cycle))
        + f" -> {cycle[-1]}" for cycle in cycles)


def test_no_import_cycle_between_concepts():
    concepts: dict[str, set[str]] = {}
    for module, edges in GRAPH.items():
        targets = concepts.setdefault(_concept(module), set())
        targets.update(_concept(t) for t in edges if _concept(t) != _concept(module))
    cycles = _cycles(concepts)
    lines = []
    for cycle in cycles:
        steps = []
        for a, b in itertools.pairwise(cycle):
            module, line = next((m, edges[t]) for m, edges in sorted(GRAPH.items())
                                if _concept(m) == a for t in sorted(edges) if _concept(t) == b)
            steps.append(f"{a or 'explain'} -> {b or 'explain'} ({module}, line {line})")
        lines.append("; ".join(steps))
    assert not cycles, "cycles between concepts:\n" + "\n".join(lines)


def test_no_upward_import():
    upward = []
    for module, edges in sorted(GRAPH.items()):
        layer = LAYERS.get(_concept(module))
        for target, line in sorted(edges.items()):
            target_layer = LAYERS.get(_concept(target))
            if layer is not None and target_layer is not None and target_layer > layer:
                upward.append(f"{module} ({LAYER_NAMES[layer]}) imports {target} "
                              f"({LAYER_NAMES[target_layer]}) at line {line}")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_only_the_command_line_imports_the_recipes():
    found = [f"{module} line {line}" for module in MODULES if _concept(module) != "cli"
             for name, line in _imports(module) if name.split(".")[0] == "explain_models"]
    assert not found, ("the library imports explain_models (resolve reference names in "
                       "explain/cli/_resolve.py instead): " + ", ".join(found))


def _notes() -> dict[str, int]:
    notes = {}
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        match = _NOTE.match(line)
        if match:
            notes[match.group(1)] = int(match.group(2).replace(",", ""))
    return notes


def test_long_modules_have_a_note():
    notes = _notes()
    lengths = {str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
               for path in MODULES.values()}
    long = sorted(f"{name} ({n} lines)" for name, n in lengths.items()
                  if n > MAX_LINES and name not in notes)
    stale = sorted(f"{name} (now {lengths.get(name, 'no such file')})" for name in notes
                   if lengths.get(name, 0) <= MAX_LINES)
    assert not long, (f"modules over {MAX_LINES} lines with no note in docs/ARCHITECTURE.md "
                      f"('- `explain/x.py` (N lines): why'): " + ", ".join(long))
    assert not stale, "notes in docs/ARCHITECTURE.md for modules no longer long: " + \
        ", ".join(stale)


@pytest.mark.parametrize("line", ["- `explain/attribution/core.py` (1,337 lines): one reason",
                                  "* `explain/x.py` (600 lines): why"])
def test_the_note_format_is_recognised(line):
    assert _NOTE.match(line)
