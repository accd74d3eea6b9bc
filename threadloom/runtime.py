"""``Runtime``: what a node can ask of the run besides the state.

Declare a ``runtime`` parameter on a node to receive it: the run's ``context`` (given as
``invoke(..., context=...)`` and typed by the graph's ``context_schema``), the ``store``
and the custom ``stream_writer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from threadloom._context import current_task

__all__ = ["ExecutionInfo", "Runtime", "ServerInfo", "get_runtime"]

Ctx = TypeVar("Ctx")


def _noop(_chunk: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    """Where a node runs: its checkpoint, namespace, task, thread, run and attempt."""

    checkpoint_id: str
    checkpoint_ns: str
    task_id: str
    thread_id: str | None = None
    run_id: str | None = None
    node_attempt: int = 1
    node_first_attempt_time: float | None = None

    def patch(self, **changes: Any) -> ExecutionInfo:
        """A copy with ``changes`` applied (the original is frozen)."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Which deployed assistant and graph a run belongs to (set by a server)."""

    assistant_id: str
    graph_id: str
    user: Any = None


@dataclass(frozen=True)
class Runtime(Generic[Ctx]):
    """Run-scoped values a node can read: ``context``, ``store``, ``stream_writer``."""

    context: Ctx = None  # type: ignore[assignment]
    store: Any = None
    stream_writer: Any = field(default=_noop)
    previous: Any = None
    execution_info: ExecutionInfo | None = None
    server_info: ServerInfo | None = None


def get_runtime(context_schema: type[Ctx] | None = None) -> Runtime[Ctx]:
    """The ``Runtime`` of the running node (raises outside a run)."""
    task = current_task.get()
    if task is None:
        raise RuntimeError("get_runtime() works only inside a node while the graph runs.")
    return task.runtime
