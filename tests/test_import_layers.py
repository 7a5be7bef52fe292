"""The import contract (issue 14 item 2): solvent's imports run one way, down the floors, with no circle.

The graph is read with `ast` from src/solvent (nothing is imported), every `import` counted, those inside
functions and under TYPE_CHECKING too. A module's floor is that of its first name under solvent/
(solvent.engine.book is on the engine floor). A module may import its own floor's package and any lower
floor; two packages sharing a floor are siblings and import neither each other nor upward. docs/architecture.md
draws the floors and says where new code goes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "solvent"

#: Floors from the bottom up; each a set of siblings (a package under solvent/ or a module solvent/X.py).
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(floor.split())
    for floor in (
        "errors _numba _blas arrays choices",  # exceptions, the numba and BLAS-thread shims, array checks, CLI choices
        "formats _extras",  # file schemas and codecs: no engine, stream or venue-rule type; the extras guard
        "params",  # the frozen model parameters (decoded through formats.errors)
        "pricing market",  # Black-76; market snapshots, oracle, depth, histories
        "factors scenarios",  # pure functions over arrays; scenario generators
        "liquidation",  # close-out, horizon and predictive-trigger kernels the engine calls
        "engine",  # Book, risk arrays, the margin assembly, results
        "baselines",  # the venues' own rules, margined beside the engine
        "convert store",  # files and records into engine types, engine results into documents; durable stores
        "api stream",  # the Python entry points; the streaming core
        "simm proof governance",  # features built on the margin engine
        "lab demo console jsonschemas",  # studies and reports, the demo, the terminal tables, the schema catalogue
        "service",  # the service beside a venue (serves the demo venue by default)
        "cli",  # the command line: a lazy group, one module per command or group of commands
        "__main__ __init__",  # `python -m solvent` and the public surface
    )
)

#: Module-level circles allowed for now, each with its reason; the set shrinks, never grows.
KNOWN_CIRCLES: frozenset[frozenset[str]] = frozenset()


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(module: str, source: str, is_package: bool) -> set[str]:
    """Every solvent module `source` imports (a `from pkg import name` counts as pkg.name where that is a module)."""
    found: set[str] = set()
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join([*here[: len(here) - node.level + 1], node.module or ""]).strip(".")
            else:
                target = node.module or ""
            for alias in node.names:
                child = f"{target}.{alias.name}"
                found.add(child if _exists(child) else target)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the solvent modules it imports, over every file of src/solvent."""
    graph: dict[str, set[str]] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        name = module_name(path)
        graph[name] = imports_of(name, path.read_text(encoding="utf-8"), path.name == "__init__.py") - {name}
    return graph


def top_name(module: str) -> str:
    """The floor key of a module: its first name under solvent, `__init__` for solvent itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def floor_of(module: str, layers: tuple[frozenset[str], ...] = LAYERS) -> int | None:
    key = top_name(module)
    return next((i for i, floor in enumerate(layers) if key in floor), None)


def back_imports(graph: Mapping[str, Iterable[str]], layers: tuple[frozenset[str], ...] = LAYERS) -> list[str]:
    """Every edge that goes up a floor or across to a sibling, as 'importer -> imported'."""
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = floor_of(module, layers), floor_of(target, layers)
            if low is None or high is None:
                continue  # reported by test_every_module_has_a_floor
            if high > low or (high == low and top_name(module) != top_name(target)):
                bad.append(f"{module} -> {target}")
    return bad


def circles(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


GRAPH = import_graph()


def test_the_graph_is_read() -> None:
    """Every module is read, and a known edge (engine/margin.py calls factors/basis.py) is in the graph."""
    assert len(GRAPH) == len(list((SRC / PACKAGE).rglob("*.py")))
    assert "solvent.factors.basis" in GRAPH["solvent.engine.margin"]


def test_every_module_has_a_floor() -> None:
    assert [module for module in GRAPH if floor_of(module) is None] == []


def test_imports_run_down_the_floors() -> None:
    assert back_imports(GRAPH) == []


def test_no_circle_beyond_the_known_ones() -> None:
    assert [sorted(c) for c in circles(GRAPH) if c not in KNOWN_CIRCLES] == []


def test_known_circles_still_exist() -> None:
    """A circle that is gone leaves the list, so that it cannot come back unnoticed."""
    found = set(circles(GRAPH))
    assert [sorted(c) for c in KNOWN_CIRCLES if c not in found] == []


# The checker itself, fed bad graphs: it must fail on them.
_LAYERS = (frozenset({"formats"}), frozenset({"factors", "scenarios"}), frozenset({"engine"}))


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("solvent.formats.io", "solvent.engine.book"),  # up two floors
        ("solvent.factors.haircuts", "solvent.engine.equity"),  # up one floor
        ("solvent.factors.basis", "solvent.scenarios.grid"),  # across to a sibling
    ],
)
def test_a_back_import_is_caught(importer: str, imported: str) -> None:
    graph = {importer: {imported, "solvent.formats.schemas"}, imported: set()}
    assert back_imports(graph, _LAYERS) == [f"{importer} -> {imported}"]


def test_imports_down_or_within_a_package_pass() -> None:
    graph = {"solvent.engine.book": {"solvent.formats.schemas", "solvent.engine.kernel", "solvent.factors.basis"}}
    assert back_imports(graph, _LAYERS) == []


def test_a_circle_is_caught() -> None:
    graph = {"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}
    assert circles(graph) == [frozenset({"a.x", "a.y", "a.z"})]


def test_an_import_inside_a_function_counts() -> None:
    source = "def f():\n    from solvent.engine.equity import collateral_columns\n"
    assert imports_of("solvent.factors.haircuts", source, is_package=False) == {"solvent.engine.equity"}


def test_a_relative_import_is_resolved() -> None:
    source = "from ..engine import book\nfrom .schemas import Portfolio\n"
    assert imports_of("solvent.formats.io", source, is_package=False) == {
        "solvent.engine.book",
        "solvent.formats.schemas",
    }


def test_the_architecture_page_draws_these_floors() -> None:
    """docs/architecture.md's table of floors names the packages of LAYERS, floor by floor, bottom up."""
    page = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    floors = page.split("## The floors", 1)[1].split("\n## ", 1)[0]  # that section's table only
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", floors, flags=re.MULTILINE)
    names = [re.findall(r"`([^`]+)`", cell) for _, cell in rows]
    drawn = [frozenset(n.strip("/").removeprefix("solvent/").removesuffix(".py") for n in row) for row in names]
    assert [int(number) for number, _ in rows] == list(range(len(LAYERS)))
    assert drawn == list(LAYERS)
