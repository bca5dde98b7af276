"""The package's layering, read from the source with ``ast`` (nothing is imported).

Rules (issue 32):

1. no import cycles between the modules of ``chemprune/`` and ``reaction_nmt/`` (imports at
   module level and inside functions both count; those under ``if TYPE_CHECKING:`` do not);
2. no engine (``chemprune.prune``, ``.distill``, ``.nas``, ``.gan``, ``.distributed``,
   ``chemprune.registry``) imports ``chemprune.pipeline``, ``.cli``, ``.data``, ``.chem``,
   ``.interop`` or ``reaction_nmt`` (``chemprune.models`` is allowed);
3. nothing outside ``chemprune/cli`` imports ``chemprune.cli`` (``chemprune/__main__.py`` aside;
   the console entry points are named in pyproject.toml, not imported);
4. ``reaction_nmt`` imports neither ``chemprune.cli`` nor ``chemprune.pipeline``;
5. ``chemprune.common`` (what both CLIs share) imports no other part of chemprune.

An edge goes to the module an import names: ``from pkg import name`` goes to ``pkg.name`` when
that is a module of the tree, else to ``pkg``; ``import a.b.c`` goes to ``a.b.c`` (the parent
packages' ``__init__`` run too, but an edge to them would make every package that imports its
own submodules a cycle). Imports of modules outside the two packages are left out.
"""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("chemprune", "reaction_nmt")

ENGINES = (
    "chemprune.prune",
    "chemprune.distill",
    "chemprune.nas",
    "chemprune.gan",
    "chemprune.distributed",
    "chemprune.registry",
)
ENGINE_FORBIDDEN = (
    "chemprune.pipeline",
    "chemprune.cli",
    "chemprune.data",
    "chemprune.chem",
    "chemprune.interop",
    "reaction_nmt",
)
# (engine module, imported module) -> why it stays for now. None is needed at present: the
# SchNet adapters inside engine packages (prune/schnet*.py, distill/schnet.py, nas/schnet.py,
# ...) import chemprune.models, which rule 2 allows, and none imports chemprune.data.
ENGINE_EXCEPTIONS: dict[tuple[str, str], str] = {}

# the modules of a cycle left for now -> why. Each is fixed where it is named; the test fails
# once the cycle is gone (take it out of this list) or grows.
KNOWN_CYCLES: dict[frozenset[str], str] = {}

CLI = "chemprune.cli"
CLI_IMPORTERS = ("chemprune.__main__",)  # python -m chemprune
COMMON = "chemprune.common"


def within(module: str, prefixes: str | tuple[str, ...]) -> bool:
    """``module`` is one of ``prefixes`` or lies inside one of them."""
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def module_of(path: Path, root: Path) -> tuple[str, bool]:
    """(dotted module name, is a package ``__init__``) of a .py file under ``root``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module name of ``from <node.module> import ...`` inside ``module``."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    if node.level - 1 > len(package) or not base:
        raise ValueError(f"{module}: relative import beyond the top-level package")
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str, modules: set[str]) -> str | None:
    """The longest prefix of ``name`` that is a module of the tree (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def build_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, dict[str, int]]:
    """module -> {imported module of ``sources``: first line}, from ``{module: (source,
    is_package)}``."""
    modules = set(sources)
    graph: dict[str, dict[str, int]] = {}
    for module, (source, is_package) in sources.items():
        edges: dict[str, int] = {}
        for node in _import_nodes(ast.parse(source, filename=module)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = _absolute(node, module, is_package)
                names = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for name in names:
                target = _known(name, modules)
                if target is not None and target != module:
                    edges[target] = min(edges.get(target, node.lineno), node.lineno)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import cycles: the strongly connected components of more than one module, each as
    its sorted module names (:func:`cycle_path` gives a closed path through one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        # iterative Tarjan: (node, iterator over its successors)
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, {})))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:  # (build_graph leaves out self-imports)
                    components.append(sorted(component))
    return sorted(components)


def cycle_path(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """A shortest closed path ``[a, b, ..., a]`` from the component's first module back to
    itself (breadth-first)."""
    start = min(component)
    component = set(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph.get(node, {})):
                if succ not in component:
                    continue
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if succ not in parents:
                    parents[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"no cycle through {sorted(component)}")  # pragma: no cover


def violations(graph: dict[str, dict[str, int]], where: dict[str, str]) -> list[str]:
    """Every broken rule (2-5) as a line naming the file, its line and the import; ``where``
    maps module -> file path for the messages."""
    found = []
    for module in sorted(graph):
        for target, line in sorted(graph[module].items()):
            at = f"{where.get(module, module)}:{line}: imports {target}"
            if (
                within(module, ENGINES)
                and within(target, ENGINE_FORBIDDEN)
                and (module, target) not in ENGINE_EXCEPTIONS
            ):
                found.append(f"{at} (an engine importing an upper layer)")
            if within(target, CLI) and not within(module, CLI) and module not in CLI_IMPORTERS:
                found.append(f"{at} (only chemprune.cli and chemprune.__main__ import the CLI)")
            if within(module, "reaction_nmt") and within(
                target, ("chemprune.pipeline", "chemprune.cli")
            ):
                found.append(f"{at} (reaction_nmt importing chemprune's pipeline or CLI)")
            if within(module, COMMON) and within(target, PACKAGES) and not within(target, COMMON):
                found.append(f"{at} (chemprune.common imports nothing above it)")
    return found


def read_tree(root: Path = ROOT) -> tuple[dict[str, tuple[str, bool]], dict[str, str]]:
    """{module: (source, is_package)} and {module: relative path} of both packages."""
    sources, where = {}, {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module, is_package = module_of(path, root)
            sources[module] = (path.read_text(encoding="utf-8"), is_package)
            where[module] = str(path.relative_to(root))
    return sources, where


def _describe(graph, where, component):
    cycle = cycle_path(graph, component)
    text = " -> ".join(cycle) + "".join(
        f"\n    {where.get(a, a)}:{graph[a][b]} imports {b}" for a, b in pairwise(cycle)
    )
    if len(component) > len(cycle) - 1:
        text += f"\n    (one path of a cycle through {', '.join(component)})"
    return text


# --- the package itself ---------------------------------------------------------------------


def test_no_import_cycles():
    sources, where = read_tree()
    graph = build_graph(sources)
    found = [c for c in cycles(graph) if frozenset(c) not in KNOWN_CYCLES]
    assert not found, "import cycles:\n" + "\n".join(_describe(graph, where, c) for c in found)


def test_layering_rules():
    sources, where = read_tree()
    found = violations(build_graph(sources), where)
    assert not found, "layering broken:\n" + "\n".join(found)


def test_exceptions_are_still_needed():
    """An exception whose import or cycle is gone is taken out of its list."""
    sources, _ = read_tree()
    graph = build_graph(sources)
    stale = [pair for pair in ENGINE_EXCEPTIONS if pair[1] not in graph.get(pair[0], {})]
    found = {frozenset(c) for c in cycles(graph)}
    stale += [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not stale, f"exceptions no longer needed, remove them: {stale}"


def test_the_tree_is_read():
    sources, _ = read_tree()
    assert {"chemprune.cli", "chemprune.pipeline.evaluate", "reaction_nmt.cli"} <= set(sources)


# --- the checker on synthetic sources -----------------------------------------------------------


def test_graph_resolves_relative_submodule_and_function_imports():
    sources = {
        "pkg": ("from . import sub\n", True),
        "pkg.sub": ("from .other import f\nfrom pkg import other as o\n", False),
        "pkg.other": ("def f():\n    import pkg.deep.leaf\n", False),
        "pkg.deep": ("from .. import sub\n", True),
        "pkg.deep.leaf": (
            "from typing import TYPE_CHECKING\nimport os\n"
            "if TYPE_CHECKING:\n    from pkg import sub\nelse:\n    from ..other import f\n",
            False,
        ),
    }
    graph = build_graph(sources)
    assert graph["pkg"] == {"pkg.sub": 1}
    assert graph["pkg.sub"] == {"pkg.other": 1}
    assert graph["pkg.other"] == {"pkg.deep.leaf": 2}
    assert graph["pkg.deep"] == {"pkg.sub": 1}
    assert graph["pkg.deep.leaf"] == {"pkg.other": 6}  # TYPE_CHECKING left out, else kept


def test_checker_finds_a_cycle_and_an_upward_import():
    sources = {
        "chemprune": ("", True),
        "chemprune.export": ("from chemprune.runtime import load\n", False),
        "chemprune.runtime": ("def load():\n    from chemprune import export\n", False),
        "chemprune.prune": ("", True),
        "chemprune.prune.base": ("from chemprune.pipeline.evaluate import evaluate\n", False),
        "chemprune.pipeline": ("", True),
        "chemprune.pipeline.evaluate": ("from chemprune.cli import errors\n", False),
        "chemprune.cli": ("from . import errors\n", True),
        "chemprune.cli.errors": ("", False),
        "reaction_nmt": ("from chemprune.cli.errors import CliError\n", True),
        "chemprune.common": ("", True),
        "chemprune.common.options": ("import chemprune.export\nfrom . import failures\n", False),
        "chemprune.common.failures": ("", False),
    }
    graph = build_graph(sources)
    assert cycles(graph) == [["chemprune.export", "chemprune.runtime"]]
    assert cycle_path(graph, ["chemprune.runtime", "chemprune.export"]) == [
        "chemprune.export",
        "chemprune.runtime",
        "chemprune.export",
    ]
    where = {m: m.replace(".", "/") + ".py" for m in sources}
    found = violations(graph, where)
    assert found == [
        "chemprune/common/options.py:1: imports chemprune.export "
        "(chemprune.common imports nothing above it)",
        "chemprune/pipeline/evaluate.py:1: imports chemprune.cli.errors "
        "(only chemprune.cli and chemprune.__main__ import the CLI)",
        "chemprune/prune/base.py:1: imports chemprune.pipeline.evaluate "
        "(an engine importing an upper layer)",
        "reaction_nmt.py:1: imports chemprune.cli.errors "
        "(only chemprune.cli and chemprune.__main__ import the CLI)",
        "reaction_nmt.py:1: imports chemprune.cli.errors "
        "(reaction_nmt importing chemprune's pipeline or CLI)",
    ]
    acyclic = dict(sources, **{"chemprune.runtime": ("def load():\n    pass\n", False)})
    assert cycles(build_graph(acyclic)) == []


def test_cycle_of_three_is_one_component_and_one_closed_path():
    sources = {
        "a": ("import b\n", False),
        "b": ("import c\n", False),
        "c": ("from a import x\n", False),
        "d": ("import a\n", False),
    }
    graph = build_graph(sources)
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycle_path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
