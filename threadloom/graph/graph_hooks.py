"""Hooks a graph carries: where a higher layer takes part in its runs and state edits.

The graph layer must not import the layers above it, yet the approval layer
(``threadloom.hitl``) must check answers before a resume runs and record every
``update_state`` in the audit log. It does so through hooks *attached to the graphs
that use approvals* - never by being imported (importing a module changes nothing
elsewhere). A graph gets its hooks at compile time, from two places:

* ``compile(..., hooks=[...])`` - the deployment's own settings (e.g.
  ``ApprovalHooks(clock=...)``);
* its nodes: a node object may carry hooks (``graph_hooks``: ``ToolNode(approval=...)``
  carries the approval hooks) or require them (``requires_graph_hooks``: names of hooks
  the graph must have); a compiled subgraph used as a node hands its hooks up.

Hooks given to ``compile`` take precedence over those of the same ``name`` carried by
nodes. Nodes carrying different hooks of one name, or requiring a hook nobody provides,
fail the compile with ``GraphHooksError``. A graph without hooks runs exactly as if
no higher layer existed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["GraphHooks", "GraphHooksError", "resolve_hooks"]


class GraphHooksError(ValueError):
    """The hooks of a graph are missing or contradict each other (raised by ``compile``)."""


@runtime_checkable
class GraphHooks(Protocol):
    """What a hook set provides (sync and async twins). ``name`` identifies the kind:
    a graph holds at most one hook set per name."""

    name: str

    def before_run(self, graph: Any, input: Any, config: Any) -> tuple[Any, Any]: ...

    async def abefore_run(self, graph: Any, input: Any, config: Any) -> tuple[Any, Any]: ...

    def before_update(self, graph: Any, saver: Any, config: Any) -> Any: ...

    async def abefore_update(self, graph: Any, saver: Any, config: Any) -> Any: ...

    def after_update(
        self, saver: Any, config: Any, updates: Any, before: Any, new_config: Any
    ) -> None: ...

    async def aafter_update(
        self, saver: Any, config: Any, updates: Any, before: Any, new_config: Any
    ) -> None: ...


def _carried(node: Any) -> tuple[Any, ...]:
    hooks = getattr(node, "graph_hooks", None)
    if hooks is None and getattr(node, "_threadloom_graph", False) is True:
        hooks = getattr(node, "hooks", None)
    return tuple(hooks) if isinstance(hooks, (tuple, list)) else ()


def _required(node: Any) -> tuple[str, ...]:
    names = getattr(node, "requires_graph_hooks", None)
    return tuple(names) if isinstance(names, (tuple, list)) else ()


def resolve_hooks(nodes: Mapping[str, Any], given: Iterable[Any] | None) -> tuple[Any, ...]:
    """The hooks a graph runs with: ``given`` (from ``compile``), completed by the ones its
    ``nodes`` (name -> node object) carry; checks what the nodes require."""
    chosen: dict[str, Any] = {}
    for hook in given or ():
        name = getattr(hook, "name", None)
        if not isinstance(name, str) or not callable(getattr(hook, "before_run", None)):
            raise GraphHooksError(
                f"compile(hooks=...) takes hook objects with a 'name' and 'before_run' "
                f"(e.g. threadloom.hitl.ApprovalHooks()); got {type(hook).__name__}."
            )
        if name in chosen and chosen[name] is not hook:
            raise GraphHooksError(f"compile(hooks=...) names two different {name!r} hooks.")
        chosen[name] = hook
    given_names = set(chosen)
    carried_by: dict[str, str] = {}
    for node_name, node in nodes.items():
        for hook in _carried(node):
            name = hook.name
            if name in given_names:
                continue
            if name in chosen and chosen[name] is not hook:
                raise GraphHooksError(
                    f"Nodes {carried_by[name]!r} and {node_name!r} carry different {name!r} "
                    "hooks; give the graph one with compile(hooks=[...])."
                )
            chosen.setdefault(name, hook)
            carried_by.setdefault(name, node_name)
    for node_name, node in nodes.items():
        for name in _required(node):
            if name not in chosen:
                raise GraphHooksError(
                    f"Node {node_name!r} needs the graph's {name!r} hooks, which it was "
                    f"compiled without: pass compile(..., hooks=[...]) (for approvals: "
                    "hooks=[threadloom.hitl.ApprovalHooks()])."
                )
    return tuple(chosen.values())
