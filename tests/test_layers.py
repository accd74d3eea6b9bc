"""The package's layers hold: each imports only the layers below it, and no two modules of
different layers import each other in a circle.

The layers are those of the architecture (docs/design.md, "The layers"), bottom first.
Imports are read from the source with ``ast``: module-level ones and those inside functions
and ``TYPE_CHECKING`` blocks alike, since a function-level import is how a cycle hides. A
new module outside every layer fails the test until it is given one.
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "threadloom"

# Bottom first. A module belongs to the layer of the longest prefix naming it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # the shared vocabulary: values, errors, names and context every layer uses
    ("vocabulary", ("threadloom.types", "threadloom.errors", "threadloom.constants",
                    "threadloom.config", "threadloom.runtime", "threadloom.managed",
                    "threadloom.typing", "threadloom.warnings", "threadloom.callbacks",
                    "threadloom._context", "threadloom._fields")),
    # what is stored: checkpoint savers and their serializer, the store, the node cache
    ("persistence", ("threadloom.checkpoint", "threadloom.store", "threadloom.cache")),
    # how a state key takes updates, and state schemas turned into channels
    ("channels", ("threadloom.channels", "threadloom._schema")),
    ("engine", ("threadloom.engine",)),
    # the graphs users build and run, and their event streams
    ("graph", ("threadloom.graph", "threadloom.pregel", "threadloom.func",
               "threadloom.stream")),
    ("hitl", ("threadloom.hitl",)),
    ("prebuilt", ("threadloom.prebuilt",)),
    # entry points and LangGraph's module paths served as thin surfaces over the above
    ("surface", ("threadloom", "threadloom.server", "threadloom.cli", "threadloom.demo",
                 "threadloom.as_langgraph", "threadloom._compat", "threadloom._internal",
                 "threadloom.utils")),
]

# (importer, imported) pairs allowed to go upward, each with its reason. Empty: keep it so;
# an entry is a debt to pay by moving the shared piece down a layer.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def _modules(package: pathlib.Path = PACKAGE) -> dict[str, pathlib.Path]:
    """Every module of ``package`` by dotted name."""
    mods = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _imports(mods: dict[str, pathlib.Path]) -> dict[str, set[str]]:
    """Which package modules each module imports (anywhere in its source)."""
    edges: dict[str, set[str]] = defaultdict(set)

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from pkg import submodule` imports the submodule; other names, pkg
                names = [f"{source}.{a.name}" if f"{source}.{a.name}" in mods else source
                         for a in node.names]
            for name in names:
                target = known(name) if name.startswith("threadloom") else None
                if target is not None and target != mod:
                    edges[mod].add(target)
    return edges


def _layer_of(mod: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if mod == prefix or mod.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return None if best is None else best[1]


def _name(index: int) -> str:
    return LAYERS[index][0]


def _upward(edges: dict[str, set[str]]) -> list[str]:
    """The imports of a higher layer (those not allowed), as readable lines."""
    upward = []
    for mod, targets in sorted(edges.items()):
        low = _layer_of(mod)
        for target in sorted(targets):
            high = _layer_of(target)
            if low is None or high is None or high <= low:
                continue
            if (mod, target) not in ALLOWED_UPWARD:
                upward.append(f"{mod} ({_name(low)}) imports {target} ({_name(high)})")
    return upward


def _crossing_cycles(edges: dict[str, set[str]]) -> list[str]:
    """The import circles whose modules lie in more than one layer, as readable lines."""
    crossing = []
    for component in _cycles(edges):
        if len({_layer_of(m) for m in component}) > 1:
            crossing.append(", ".join(f"{m} ({_name(_layer_of(m) or 0)})" for m in component))
    return crossing


MODULES = _modules()
IMPORTS = _imports(MODULES)


def test_every_module_has_a_layer() -> None:
    missing = sorted(m for m in MODULES if _layer_of(m) is None)
    assert not missing, f"modules outside every layer (add them to LAYERS): {missing}"


def test_no_layer_imports_a_higher_one() -> None:
    upward = _upward(IMPORTS)
    assert not upward, (
        "a lower layer imports a higher one; move the shared piece down a layer:\n  "
        + "\n  ".join(upward)
    )


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
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
                if len(component) > 1:
                    found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_circle_spans_two_layers() -> None:
    crossing = _crossing_cycles(IMPORTS)
    assert not crossing, "modules of different layers import each other in a circle:\n  " + (
        "\n  ".join(crossing))


def test_the_checks_see_function_level_imports_and_cycles(tmp_path: pathlib.Path) -> None:
    """On a package made for the purpose: an upward import hidden in a function, and the
    circle it closes, are both reported; a same-layer circle is not."""
    root = tmp_path / "threadloom"
    for name, source in {
        "__init__.py": "",
        "types.py": "from threadloom.errors import E\n",
        "errors.py": "def f():\n    from threadloom import types\n    return types\n",
        "engine/__init__.py": "",
        "engine/loop.py": "from threadloom.types import Command\n",
        "engine/task.py": "def run():\n    from ..pregel.main import Pregel\n    return Pregel\n",
        "pregel/__init__.py": "",
        "pregel/main.py": "from threadloom.engine import task\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source)
    edges = _imports(_modules(root))
    assert _upward(edges) == [
        "threadloom.engine.task (engine) imports threadloom.pregel.main (graph)"]
    assert _crossing_cycles(edges) == [
        "threadloom.engine.task (engine), threadloom.pregel.main (graph)"]
    assert sorted(_cycles(edges)) == [["threadloom.engine.task", "threadloom.pregel.main"],
                                      ["threadloom.errors", "threadloom.types"]]
