"""In the engine, the checkpoint package and the graphs (``graph``, ``pregel.main``), a
module imports another at its top unless that import would close a cycle: an import inside
a function is kept only where the imported module (or a package it sits in) imports the
importer back when loaded. (``pregel.types`` keeps LangGraph's deprecated names behind a
module ``__getattr__``, loaded when asked for; the server, the CLI and hitl load optional
pieces on first use.)

Imports are read from the source with ``ast``, as ``test_layers`` reads them; a module's
load-time imports are those of its top-level statements (a ``try`` block's included).
"""

from __future__ import annotations

import ast
import pathlib

from test_layers import _modules

PACKAGES = (
    "threadloom.engine", "threadloom.checkpoint", "threadloom.graph", "threadloom.pregel.main"
)


def _imported(mod: str, path: pathlib.Path, node: ast.Import | ast.ImportFrom,
              mods: dict[str, pathlib.Path]) -> list[str]:
    """The package modules ``node`` (in module ``mod``) imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        names = [f"{source}.{a.name}" if f"{source}.{a.name}" in mods else source
                 for a in node.names]
    found = []
    for name in names:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


def _with_packages(mod: str, mods: dict[str, pathlib.Path]) -> list[str]:
    """``mod`` and the packages loading it loads first."""
    parts = mod.split(".")
    return [p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p in mods] + [mod]


def test_imports_inside_functions_only_break_cycles() -> None:
    mods = _modules()
    at_load: dict[str, set[str]] = {}
    inside: list[tuple[str, str, int]] = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        top += [n for t in tree.body if isinstance(t, ast.Try) for n in t.body
                if isinstance(n, ast.Import | ast.ImportFrom)]
        at_load[mod] = {t for n in top for t in _imported(mod, path, n, mods)}
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                inside += [(mod, t, n.lineno) for n in ast.walk(fn)
                           if isinstance(n, ast.Import | ast.ImportFrom)
                           for t in _imported(mod, path, n, mods) if t != mod]

    def loads(start: str, target: str) -> bool:
        seen: set[str] = set()
        stack = _with_packages(start, mods)
        while stack:
            m = stack.pop()
            if m == target:
                return True
            if m not in seen:
                seen.add(m)
                for t in at_load.get(m, ()):
                    stack += _with_packages(t, mods)
        return False

    checked = [(m, t, line) for m, t, line in inside if m.startswith(PACKAGES)]
    assert checked  # the cycles that remain are read too
    root = mods["threadloom"].parent.parent
    movable = sorted({f"{mods[m].relative_to(root)}:{line} imports {t}"
                      for m, t, line in checked if not loads(t, m)})
    assert not movable, "import these at the top of the module:\n" + "\n".join(movable)
