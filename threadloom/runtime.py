"""``Runtime``: what a node can ask of the run besides the state.

Declare a ``runtime`` parameter on a node to receive it: the run's ``context`` (given as
``invoke(..., context=...)`` and typed by the graph's ``context_schema``), the ``store``,
the custom ``stream_writer``, where the task runs (``execution_info``), what server runs
it (``server_info``) and the run's ``control`` (request a drain from inside a node).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Generic, TypeVar

from threadloom._context import current_attempt, current_task

__all__ = [
    "DEFAULT_RUNTIME",
    "ExecutionInfo",
    "RunControl",
    "Runtime",
    "ServerInfo",
    "get_runtime",
]

Ctx = TypeVar("Ctx")


def _noop(_chunk: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    """Where and how the current task runs: its checkpoint, namespace, task and thread
    ids, and which attempt this is (retries count up from 1)."""

    checkpoint_id: str | None = None
    checkpoint_ns: str = ""
    task_id: str | None = None
    thread_id: str | None = None
    run_id: str | None = None
    node_attempt: int = 1
    node_first_attempt_time: float | None = None

    def patch(self, **changes: Any) -> ExecutionInfo:
        """A copy with ``changes`` applied (this one is frozen)."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Set when the graph runs on a server: which assistant and graph, and which user
    (``configurable["langgraph_auth_user"]``) started the run."""

    assistant_id: str | None = None
    graph_id: str | None = None
    user: Any = None


def server_info_from(configurable: Any) -> ServerInfo | None:
    """The ``ServerInfo`` a run's ``configurable`` describes (``assistant_id``,
    ``graph_id``, ``langgraph_auth_user``), or None when it names no assistant or graph."""
    if not configurable:
        return None
    assistant_id = configurable.get("assistant_id")
    graph_id = configurable.get("graph_id")
    if assistant_id is None and graph_id is None:
        return None
    return ServerInfo(
        assistant_id=None if assistant_id is None else str(assistant_id),
        graph_id=None if graph_id is None else str(graph_id),
        user=configurable.get("langgraph_auth_user"),
    )


class RunControl:
    """A handle on a running graph from outside (or inside) it.

    ``request_drain(reason)`` asks the run to stop at the next superstep boundary: the
    steps done are checkpointed and the run raises ``GraphDrained(reason)`` instead of
    starting the next one (a run whose last step is running simply finishes).
    """

    __slots__ = ("_lock", "_reason")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None

    def request_drain(self, reason: str = "shutdown") -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason

    @property
    def drain_requested(self) -> bool:
        return self._reason is not None

    @property
    def drain_reason(self) -> str | None:
        return self._reason

    def __repr__(self) -> str:
        return f"RunControl(drain_requested={self.drain_requested!r})"


@dataclass(frozen=True)
class Runtime(Generic[Ctx]):
    """Run-scoped values a node can read: ``context``, ``store``, ``stream_writer``, ..."""

    context: Ctx = None  # type: ignore[assignment]
    store: Any = None
    stream_writer: Any = field(default=_noop)
    previous: Any = None
    execution_info: ExecutionInfo | None = None
    server_info: ServerInfo | None = None
    control: RunControl | None = None

    def merge(self, other: Runtime[Any]) -> Runtime[Ctx]:
        """This runtime with ``other``'s values where they are set (not None/no-op)."""
        return Runtime(
            context=other.context or self.context,
            store=other.store or self.store,
            stream_writer=(
                other.stream_writer if other.stream_writer is not _noop else self.stream_writer
            ),
            previous=other.previous if other.previous is not None else self.previous,
            execution_info=other.execution_info or self.execution_info,
            server_info=other.server_info or self.server_info,
            control=other.control or self.control,
        )

    def override(self, **changes: Any) -> Runtime[Ctx]:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    def heartbeat(self) -> None:
        """Tell the engine the node is making progress: resets its ``idle_timeout``.

        A no-op when the running node has no idle timeout (or outside a run).
        """
        attempt = current_attempt.get()
        if attempt is not None:
            attempt.touch(heartbeat=True)


class _TaskRuntime(Runtime[Ctx]):
    """The ``Runtime`` the engine hands a task: ``execution_info`` is built on first read
    from facts taken when the attempt started (most nodes never read it).

    Everything else is a ``Runtime``: its fields, ``merge``, ``override`` (which makes a
    plain copy of the same class with every field set), equality and ``repr`` read
    ``execution_info`` like any other field."""

    @cached_property
    def execution_info(self) -> ExecutionInfo | None:
        ns, task_id, checkpoint_map, thread_id, run_id, attempt, first_time = self.__dict__.pop(
            "_info"
        )
        return ExecutionInfo(
            checkpoint_id=(checkpoint_map or {}).get(ns.rsplit("|", 1)[0] if "|" in ns else "", ""),
            checkpoint_ns=ns,
            task_id=task_id,
            thread_id=thread_id,
            run_id=run_id,
            node_attempt=attempt,
            node_first_attempt_time=first_time,
        )


_TaskRuntime.__qualname__ = "Runtime"  # its repr reads as any Runtime's


def task_runtime(fields: dict[str, Any], info: tuple[Any, ...]) -> Runtime[Any]:
    """A task attempt's ``Runtime``, made without the frozen dataclass's per-field
    ``__init__`` (this runs once per task). ``fields``: the values of ``context``,
    ``store``, ``stream_writer``, ``previous``, ``server_info`` and ``control`` (shared by
    the run's tasks); ``info``: (namespace, task id, the config's ``checkpoint_map``,
    thread id, run id, attempt number, first attempt's time), the facts its
    ``ExecutionInfo`` is built from when first read."""
    runtime = object.__new__(_TaskRuntime)
    state = runtime.__dict__
    state.update(fields)
    state["_info"] = info
    return runtime


DEFAULT_RUNTIME: Runtime[Any] = Runtime()
"""The runtime of code that runs outside a graph: no context, store or writer."""


def get_runtime(context_schema: type[Ctx] | None = None) -> Runtime[Ctx]:
    """The ``Runtime`` of the running node (raises outside a run)."""
    task = current_task.get()
    if task is None:
        raise RuntimeError("get_runtime() works only inside a node while the graph runs.")
    runtime: Runtime[Ctx] = task.runtime
    return runtime
