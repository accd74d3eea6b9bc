"""Drawing: the builder's nodes and edges as a langchain_core ``Graph``.

``Graph`` brings ``draw_mermaid()``, ``draw_ascii()`` and ``to_json()``; conditional edges
are drawn dotted, to every target of their ``path_map`` (or to every node without one).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin, get_type_hints

from langchain_core.runnables.graph import Graph

from threadloom.constants import END, START
from threadloom.types import Command

if TYPE_CHECKING:
    from threadloom.graph.state import StateGraph


def draw_graph(builder: StateGraph, *, xray: int | bool = False) -> Graph:
    graph = Graph()
    nodes: dict[str, Any] = {START: graph.add_node(None, START)}
    for name, spec in builder.nodes.items():
        nodes[name] = graph.add_node(None, name, metadata=spec.metadata or None)
    ends_used = False

    def target(name: str) -> Any:
        nonlocal ends_used
        if name == END:
            ends_used = True
            if END not in nodes:
                nodes[END] = graph.add_node(None, END)
        return nodes[name]

    # Edges in LangGraph's drawing order: by (source, target), plain edges into END last.
    edges: list[tuple[str, str, str | None, bool]] = []
    for src, dst in builder.edges:
        edges.append((src, dst, None, False))
    for srcs, dst in builder.waiting_edges:
        edges.extend((src, dst, None, False) for src in srcs)
    for name, spec in builder.nodes.items():
        for label, dst in _destinations(spec).items():
            edges.append((name, dst, label if label != dst else None, True))
    for src, branches in builder.branches.items():
        for branch in branches.values():
            if branch.ends is not None:
                targets = {str(label): dst for label, dst in branch.ends.items()}
            else:
                targets = {n: n for n in [*builder.nodes, END] if n != src}
            for label, dst in targets.items():
                edges.append((src, dst, label if label != dst else None, True))
    edges.sort(key=lambda e: (e[1] == END and not e[3], e[0], e[1]))
    for src, dst, label, conditional in edges:
        graph.add_edge(nodes[src], target(dst), data=label, conditional=conditional)
    if not ends_used:
        nodes[END] = graph.add_node(None, END)
        for name in builder.nodes:
            has_out = any(s == name for s, _ in builder.edges) or name in builder.branches
            has_out = has_out or bool(_destinations(builder.nodes[name]))
            has_out = has_out or any(name in srcs for srcs, _ in builder.waiting_edges)
            if not has_out:
                graph.add_edge(nodes[name], nodes[END])
    return graph


def _destinations(spec: Any) -> dict[str, str]:
    """Where a node's ``Command(goto=...)`` may lead: ``destinations=`` or its return hint."""
    if isinstance(spec.destinations, dict):
        return {str(label): dst for dst, label in spec.destinations.items()}
    if spec.destinations:
        return {dst: dst for dst in spec.destinations}
    try:
        fn = spec.action
        target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else fn.__call__
        hint = get_type_hints(target).get("return")
    except Exception:  # noqa: BLE001 - no usable hint: nothing to draw
        return {}
    if get_origin(hint) is not Command:
        return {}
    args = get_args(hint)
    if not args or get_origin(args[0]) is not Literal:
        return {}
    return {dst: dst for dst in get_args(args[0])}
