"""The graphs a server serves, and their state in the API's shapes.

``GraphRegistry`` imports every graph of the config once, bound to the storage's
checkpointer and store. ``thread_state`` turns a ``StateSnapshot`` into the
``ThreadState`` dict the official client reads; ``pending_interrupts`` gives the
``{task_id: [{"id", "value"}]}`` map a thread record shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from threadloom.server.config import ServerConfig, import_object
from threadloom.server.errors import NotFound
from threadloom.server.serde import jsonable

__all__ = [
    "GraphRegistry", "checkpoint_ref", "interrupt_dicts", "output_interrupts", "pending_interrupts",
    "thread_state",
]


class GraphRegistry:
    """``graph_id`` -> compiled graph, all on the server's checkpointer and store."""

    def __init__(self, config: ServerConfig, checkpointer: Any, store: Any) -> None:
        from threadloom.cli import bind_graph

        self._graphs: dict[str, Any] = {}
        for graph_id, spec in config.graphs.items():
            obj = import_object(spec, config.base_dir, what=f"graph {graph_id!r}")
            self._graphs[graph_id] = bind_graph(
                obj, checkpointer, store=store, what=f"graph {graph_id!r} ({spec})"
            )

    @classmethod
    def of(cls, graphs: Mapping[str, Any], checkpointer: Any, store: Any) -> GraphRegistry:
        """A registry of graphs given as objects (embedding the server in Python)."""
        from threadloom.cli import bind_graph

        registry = cls.__new__(cls)
        registry._graphs = {
            gid: bind_graph(obj, checkpointer, store=store, what=f"graph {gid!r}")
            for gid, obj in graphs.items()
        }
        return registry

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._graphs

    def ids(self) -> list[str]:
        """The graph ids, in config order."""
        return list(self._graphs)

    def get(self, graph_id: str) -> Any:
        """The compiled graph, or ``NotFound`` naming the served graphs."""
        try:
            return self._graphs[graph_id]
        except KeyError:
            raise NotFound(
                f"Graph {graph_id!r} not found; this server serves {self.ids()}."
            ) from None


def interrupt_dicts(interrupts: Any) -> list[dict[str, Any]]:
    """``[{"id", "value"}]`` for interrupts."""
    return [{"id": i.id, "value": jsonable(i.value)} for i in interrupts or ()]


def output_interrupts(dicts: Any) -> list[dict[str, Any]]:
    """A run output's ``__interrupt__``: the interrupts' dicts with the
    ``response_schema`` key the reference's outputs and stream chunks carry (null)."""
    return [{**i, "response_schema": i.get("response_schema")} for i in dicts]


def pending_interrupts(snapshot: Any) -> dict[str, list[dict[str, Any]]]:
    """The thread record's ``interrupts``: dynamic interrupts pending, by task id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for task in snapshot.tasks:
        if task.interrupts:
            out[task.id] = interrupt_dicts(task.interrupts)
    return out


def checkpoint_ref(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The API's reference to the checkpoint a config names (``thread_id``,
    ``checkpoint_ns``, ``checkpoint_id``, and ``checkpoint_map`` when it has one)."""
    if not config:
        return None
    conf = config.get("configurable") or {}
    out = {
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
    }
    if conf.get("checkpoint_map"):
        out["checkpoint_map"] = conf["checkpoint_map"]
    return out


def thread_state(snapshot: Any) -> dict[str, Any]:
    """A ``StateSnapshot`` as the API's ``ThreadState`` (nested for subgraph tasks)."""
    checkpoint = checkpoint_ref(snapshot.config)
    if checkpoint is not None and checkpoint["checkpoint_id"] is None:
        checkpoint = None  # a state with no checkpoint yet (a subgraph not started)
    parent = checkpoint_ref(snapshot.parent_config)
    tasks = []
    for task in snapshot.tasks:
        state = task.state
        if state is not None and hasattr(state, "values"):
            state = thread_state(state)
        elif isinstance(state, Mapping):
            state = {"checkpoint": checkpoint_ref(state)}
        tasks.append({
            "id": task.id,
            "name": task.name,
            "path": jsonable(task.path),
            "error": None if task.error is None else str(task.error),
            "interrupts": interrupt_dicts(task.interrupts),
            "checkpoint": None,
            "state": state,
            "result": task.result,
        })
    # (values, metadata and results as they are: the caller writes the whole as JSON,
    # which turns them into JSON data as ``jsonable`` would - once, not twice)
    return {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "tasks": tasks,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "metadata": snapshot.metadata,  # (null: no checkpoint yet)
        "created_at": snapshot.created_at,
        "interrupts": interrupt_dicts(snapshot.interrupts),
        "checkpoint_id": (checkpoint or {}).get("checkpoint_id"),
        "parent_checkpoint_id": (parent or {}).get("checkpoint_id"),
    }
