"""The package's layering, read from the source with ``ast`` (nothing is imported).

Rules (issue 32): the layers of ``chemprune`` point one way,

    common <- engines <- molecules <- deploy <- pipeline <- cli

(an arrow: "is imported by"; nothing imports upward), so

1. no import cycles between the modules of ``chemprune/`` and ``reaction_nmt/`` (imports at
   module level and inside functions both count; those under ``if TYPE_CHECKING:`` do not);
2. each layer imports only what :data:`LAYERS` allows it: ``chemprune.common`` nothing else of
   chemprune; the engines (``chemprune.engines``: prune, distill, nas, gan, distributed, the
   registry) engines and common; ``chemprune.molecules`` molecules, engines, common;
   ``chemprune.deploy`` also molecules; ``chemprune.pipeline`` and ``chemprune.fuzz`` anything
   but the CLI; ``reaction_nmt`` only ``chemprune.engines``, ``chemprune.common`` and
   ``chemprune.molecules.chem`` (its reaction inputs are read and checked the same way).
   Every layer may import the root ``chemprune`` (``__version__``), which imports nothing;
3. nothing outside ``chemprune/cli`` imports ``chemprune.cli`` (``chemprune/__main__.py`` aside;
   the console entry points are named in pyproject.toml, not imported).

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

ROOT_PACKAGE = "chemprune"  # holds __version__ only; every layer may import it
COMMON = "chemprune.common"
ENGINES = "chemprune.engines"
MOLECULES = "chemprune.molecules"
DEPLOY = "chemprune.deploy"
PIPELINE = "chemprune.pipeline"
FUZZ = "chemprune.fuzz"
CLI = "chemprune.cli"
CLI_IMPORTERS = ("chemprune.__main__",)  # python -m chemprune

# layer -> (what it may import of the two packages, or None: anything; what it may not)
LAYERS: dict[str, tuple[tuple[str, ...] | None, tuple[str, ...]]] = {
    COMMON: ((COMMON,), ()),
    ENGINES: ((ENGINES, COMMON), ()),
    MOLECULES: ((MOLECULES, ENGINES, COMMON), ()),
    DEPLOY: ((DEPLOY, MOLECULES, ENGINES, COMMON), ()),
    PIPELINE: (None, (CLI,)),
    FUZZ: (None, (CLI,)),
    "reaction_nmt": (("reaction_nmt", ENGINES, COMMON, "chemprune.molecules.chem"), ()),
}

# (module, imported module) -> why it stays for now. None is needed at present.
LAYER_EXCEPTIONS: dict[tuple[str, str], str] = {}

# the modules of a cycle left for now -> why. Each is fixed where it is named; the test fails
# once the cycle is gone (take it out of this list) or grows.
KNOWN_CYCLES: dict[frozenset[str], str] = {}


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


def layer_of(module: str) -> str | None:
    """The layer of :data:`LAYERS` that ``module`` lies in (the longest match), else None."""
    found = [layer for layer in LAYERS if within(module, layer)]
    return max(found, key=len) if found else None


def violations(graph: dict[str, dict[str, int]], where: dict[str, str]) -> list[str]:
    """Every broken rule (2-3) as a line naming the file, its line and the import; ``where``
    maps module -> file path for the messages."""
    found = []
    for module in sorted(graph):
        layer = layer_of(module)
        for target, line in sorted(graph[module].items()):
            at = f"{where.get(module, module)}:{line}: imports {target}"
            if (
                layer is not None
                and target != ROOT_PACKAGE
                and (module, target) not in (LAYER_EXCEPTIONS)
            ):
                allowed, forbidden = LAYERS[layer]
                if (allowed is not None and not within(target, allowed)) or within(
                    target, forbidden
                ):
                    found.append(f"{at} ({layer} importing a layer it may not)")
            if within(target, CLI) and not within(module, CLI) and module not in CLI_IMPORTERS:
                found.append(f"{at} (only chemprune.cli and chemprune.__main__ import the CLI)")
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
    stale = [pair for pair in LAYER_EXCEPTIONS if pair[1] not in graph.get(pair[0], {})]
    found = {frozenset(c) for c in cycles(graph)}
    stale += [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not stale, f"exceptions no longer needed, remove them: {stale}"


def test_the_tree_is_read():
    sources, _ = read_tree()
    assert {"chemprune.cli", "chemprune.pipeline.evaluate", "reaction_nmt.cli"} <= set(sources)
    for layer in (COMMON, ENGINES, MOLECULES, DEPLOY, PIPELINE, FUZZ, CLI):
        assert layer in sources, layer


def test_the_root_package_imports_nothing():
    """Every layer may import ``chemprune`` itself (``__version__``), so it imports nothing."""
    sources, _ = read_tree()
    assert build_graph(sources)[ROOT_PACKAGE] == {}


def test_every_module_is_in_a_layer():
    """A new top-level module of chemprune is placed in a layer (or here, with a reason)."""
    sources, _ = read_tree()
    outside = {m for m in sources if within(m, ROOT_PACKAGE) and layer_of(m) is None}
    assert outside == {ROOT_PACKAGE, "chemprune.__main__", CLI} | {
        m for m in sources if within(m, CLI)
    }


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
        "chemprune.deploy": ("", True),
        "chemprune.deploy.export": ("from chemprune.deploy.runtime import load\n", False),
        "chemprune.deploy.runtime": (
            "def load():\n    from chemprune.deploy import export\n",
            False,
        ),
        "chemprune.engines": ("", True),
        "chemprune.engines.prune": ("", True),
        "chemprune.engines.prune.base": (
            "from chemprune import __version__\nfrom chemprune.molecules.models import SchNet\n",
            False,
        ),
        "chemprune.molecules": ("", True),
        "chemprune.molecules.models": ("from chemprune.engines.prune import base\n", True),
        "chemprune.molecules.chem": ("", True),
        "chemprune.pipeline": ("", True),
        "chemprune.pipeline.evaluate": ("from chemprune.cli import errors\n", False),
        "chemprune.cli": ("from . import errors\n", True),
        "chemprune.cli.errors": ("", False),
        "reaction_nmt": (
            "from chemprune.molecules import chem\nfrom chemprune.molecules import models\n",
            True,
        ),
        "chemprune.common": ("", True),
        "chemprune.common.options": (
            "import chemprune.deploy.export\nfrom . import failures\n",
            False,
        ),
        "chemprune.common.failures": ("", False),
    }
    graph = build_graph(sources)
    assert cycles(graph) == [
        ["chemprune.deploy.export", "chemprune.deploy.runtime"],
        ["chemprune.engines.prune.base", "chemprune.molecules.models"],
    ]
    assert cycle_path(graph, ["chemprune.deploy.runtime", "chemprune.deploy.export"]) == [
        "chemprune.deploy.export",
        "chemprune.deploy.runtime",
        "chemprune.deploy.export",
    ]
    where = {m: m.replace(".", "/") + ".py" for m in sources}
    found = violations(graph, where)
    assert found == [
        "chemprune/common/options.py:1: imports chemprune.deploy.export "
        "(chemprune.common importing a layer it may not)",
        "chemprune/engines/prune/base.py:2: imports chemprune.molecules.models "
        "(chemprune.engines importing a layer it may not)",
        "chemprune/pipeline/evaluate.py:1: imports chemprune.cli.errors "
        "(chemprune.pipeline importing a layer it may not)",
        "chemprune/pipeline/evaluate.py:1: imports chemprune.cli.errors "
        "(only chemprune.cli and chemprune.__main__ import the CLI)",
        "reaction_nmt.py:2: imports chemprune.molecules.models "
        "(reaction_nmt importing a layer it may not)",
    ]
    acyclic = dict(sources, **{"chemprune.deploy.runtime": ("def load():\n    pass\n", False)})
    assert cycles(build_graph(acyclic)) == [
        ["chemprune.engines.prune.base", "chemprune.molecules.models"]
    ]


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
