"""Drawing: the builder's nodes and edges as a langchain_core ``Graph``.

``Graph`` brings ``draw_mermaid()``, ``draw_ascii()`` and ``to_json()``; conditional edges
are drawn dotted, to every target of their ``path_map`` (or to every node without one).
A node with no way out is drawn leading to ``__end__``. With ``xray``, a node that runs a
subgraph is drawn as that subgraph's own drawing, its ids prefixed ``<node>:``: its
``__start__`` and ``__end__`` are left out where a single node takes their place, and the
edges into and out of the node are drawn to its first and from its last node.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin, get_type_hints

from langchain_core.runnables import Runnable
from langchain_core.runnables.graph import Graph

from threadloom.constants import END, START
from threadloom.engine.runnable import RunnableCallable
from threadloom.engine.subgraphs import node_subgraph
from threadloom.types import Command

if TYPE_CHECKING:
    from threadloom.graph.state import StateGraph


def draw_graph(
    builder: StateGraph[Any],
    *,
    xray: int | bool = False,
    interrupt_before: Any = (),
    interrupt_after: Any = (),
) -> Graph:
    """Draw ``builder``'s graph; ``xray``: how many levels of subgraphs to draw inside
    their nodes (``True``: all). ``interrupt_before``/``interrupt_after``: the node names
    the compiled graph pauses at, shown in those nodes' metadata (``__interrupt``)."""
    graph = Graph()
    nodes: dict[str, Any] = {START: graph.add_node(_drawn(START, _start), START)}
    for name, spec in builder.nodes.items():
        metadata = dict(spec.metadata or {})
        pauses = [when for when, names in (("before", interrupt_before),
                                           ("after", interrupt_after))
                  if not isinstance(names, str) and name in (names or ())]
        if pauses:
            metadata["__interrupt"] = ",".join(pauses)
        nodes[name] = graph.add_node(_drawn(name, spec.action), name,
                                     metadata=metadata or None)
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
    if edges:
        # a node with no way out ends the run
        sources = {src for src, _, _, _ in edges}
        edges += [(name, END, None, False) for name in builder.nodes if name not in sources]
    edges.sort(key=lambda e: (e[1] == END and not e[3], e[0], e[1]))
    for src, dst, edge_label, conditional in edges:
        graph.add_edge(nodes[src], target(dst), data=edge_label, conditional=conditional)
    if not ends_used:
        nodes[END] = graph.add_node(None, END)
    if xray:
        for name, spec in builder.nodes.items():
            _draw_inside(graph, name, spec.action, xray)
    return graph


def _start(state: Any) -> Any:
    """What ``__start__`` does with the input, as drawn (its node's data)."""
    return state


def _drawn(name: str, action: Any) -> Any:
    """A drawn node's data: its action as a ``Runnable`` (a subgraph or a ``ToolNode``
    as it is, a function as a ``RunnableCallable``), as LangGraph's drawings hold - so
    ``to_json()`` shows each node as ``{"type": "runnable", "data": {"name": ...}}``.
    None (a node drawn without data) for an action that cannot be wrapped."""
    if isinstance(action, Runnable):
        return action
    try:
        return RunnableCallable(action, name=name, trace=False)
    except (TypeError, ValueError):
        return None


def _draw_inside(graph: Graph, name: str, action: Any, xray: int | bool) -> None:
    """Replace node ``name`` of ``graph`` by the drawing of the subgraph it runs, if any."""
    sub = node_subgraph(action)
    if sub is None:
        return
    deeper = xray if isinstance(xray, bool) else xray - 1
    inner = sub.get_graph(xray=deeper)
    inner.trim_first_node()
    inner.trim_last_node()
    if inner.first_node() is None or inner.last_node() is None:
        return  # no single node to draw the edges into and out of
    first, last = graph.extend(inner, prefix=name)
    assert first is not None and last is not None
    del graph.nodes[name]
    graph.edges = [
        edge.copy(
            source=last.id if edge.source == name else edge.source,
            target=first.id if edge.target == name else edge.target,
        )
        for edge in graph.edges
    ]


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
