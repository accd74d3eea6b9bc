"""Which graphs a node may run: the graph itself, or graphs its function can reach.

A node that *is* a compiled graph runs it. A function node may run a graph it reaches by
name: a closure variable, or a global / closure name followed by attributes
(``CHAIN.payload.invoke(...)``). ``function_references`` lists the values so reachable
without running anything: closure cells, and the name-and-attribute chains loaded in the
function's bytecode (chains in nested functions count only when they start from a closure
variable of the function). Attributes are read with ``inspect.getattr_static``, so no
property or ``__getattr__`` runs; subscripts and attributes of locals (``self.graph``)
are not followed.
"""

from __future__ import annotations

import dis
import inspect
import types
from collections.abc import Iterator
from typing import Any

__all__ = ["find_subgraphs", "function_references", "is_graph", "node_subgraph"]

_ROOT_OPS = frozenset({"LOAD_GLOBAL", "LOAD_DEREF", "LOAD_NAME"})
_ATTR_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_MISSING = object()


def is_graph(value: Any) -> bool:
    """True for a compiled threadloom graph (instance, not class)."""
    if isinstance(value, type):
        return False
    return bool(inspect.getattr_static(type(value), "_threadloom_graph", False))


def _chains(code: types.CodeType) -> Iterator[tuple[str, str, list[str]]]:
    """``(op, root_name, [attr, ...])`` for each name load followed by attribute loads."""
    root: tuple[str, str] | None = None
    attrs: list[str] = []
    for ins in dis.get_instructions(code):
        if ins.opname in _ATTR_OPS and root is not None:
            attrs.append(ins.argval)
            continue
        if root is not None:
            yield root[0], root[1], attrs
            root, attrs = None, []
        if ins.opname in _ROOT_OPS and isinstance(ins.argval, str):
            root = (ins.opname, ins.argval)
    if root is not None:
        yield root[0], root[1], attrs


def _nested_codes(code: types.CodeType) -> Iterator[types.CodeType]:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield const
            yield from _nested_codes(const)


def _follow(value: Any, attrs: list[str]) -> Iterator[Any]:
    """``value`` and each value along the attribute path (stops where one is missing)."""
    yield value
    for name in attrs:
        try:
            value = inspect.getattr_static(value, name)
        except AttributeError:
            return
        if isinstance(value, (property, types.MemberDescriptorType, types.GetSetDescriptorType)):
            return
        yield value


def _functions(fn: Any) -> Iterator[types.FunctionType]:
    """The plain functions behind ``fn``: itself (or a bound method's function), then
    whatever ``__wrapped__`` leads to."""
    seen: set[int] = set()
    while fn is not None and id(fn) not in seen:
        seen.add(id(fn))
        target = fn.__func__ if isinstance(fn, types.MethodType) else fn
        if isinstance(target, types.FunctionType):
            yield target
        try:
            fn = inspect.getattr_static(fn, "__wrapped__")
        except AttributeError:
            return


def function_references(fn: Any) -> list[Any]:
    """The values ``fn`` can reach by name (see the module docstring); ``[]`` for
    callables without Python code (builtins, ``functools.partial``, ...)."""
    found: dict[int, Any] = {}
    for func in _functions(fn):
        code = func.__code__
        cells: dict[str, Any] = {}
        for name, cell in zip(code.co_freevars, func.__closure__ or (), strict=False):
            try:
                cells[name] = cell.cell_contents
            except ValueError:  # an empty cell (variable not assigned yet)
                continue
        for value in cells.values():
            found.setdefault(id(value), value)
        module_globals = func.__globals__
        for op, name, attrs in _chains(code):
            if op == "LOAD_DEREF":
                root = cells.get(name, _MISSING)
            else:
                root = module_globals.get(name, _MISSING)
            if root is not _MISSING:
                for value in _follow(root, attrs):
                    found.setdefault(id(value), value)
        for nested in _nested_codes(code):
            for op, name, attrs in _chains(nested):
                if op == "LOAD_DEREF" and name in cells:
                    for value in _follow(cells[name], attrs):
                        found.setdefault(id(value), value)
    return list(found.values())


def find_subgraphs(fn: Any) -> list[Any]:
    """The graphs a node built from ``fn`` runs or may run (see the module docstring)."""
    if is_graph(fn):
        return [fn]
    return [value for value in function_references(fn) if is_graph(value)]


def node_subgraph(fn: Any) -> Any:
    """The graph a node built from ``fn`` counts as running (its namespace's graph for
    state reads and updates, what ``xray`` draws inside it): ``fn`` itself if it is a
    graph, else the first graph it reaches; None if it reaches none."""
    found = find_subgraphs(fn)
    return found[0] if found else None
