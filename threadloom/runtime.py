"""``Runtime``: what a node can ask of the run besides the state.

Declare a ``runtime`` parameter on a node to receive it: the run's ``context`` (given as
``invoke(..., context=...)`` and typed by the graph's ``context_schema``), the ``store``
and the custom ``stream_writer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from threadloom._context import current_task

__all__ = ["ExecutionInfo", "Runtime", "get_runtime"]

Ctx = TypeVar("Ctx")


def _noop(_chunk: Any) -> None:
    return None


@dataclass(frozen=True)
class ExecutionInfo:
    """Which execution of which task a node is: its ids, and its attempt under retries.

    ``node_attempt`` counts from 1 (a retry policy's second try is 2);
    ``node_first_attempt_time`` is when the first attempt started (``time.time()``).
    """

    checkpoint_id: str = ""
    checkpoint_ns: str = ""
    task_id: str = ""
    thread_id: str | None = None
    run_id: str | None = None
    node_attempt: int = 1
    node_first_attempt_time: float | None = None

    def patch(self, **changes: Any) -> ExecutionInfo:
        """A copy with ``changes`` applied (the info itself is frozen)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class Runtime(Generic[Ctx]):
    """Run-scoped values a node can read: ``context``, ``store``, ``stream_writer``,
    ``previous`` (functional API) and ``execution_info``."""

    context: Ctx = None  # type: ignore[assignment]
    store: Any = None
    stream_writer: Any = field(default=_noop)
    previous: Any = None
    execution_info: ExecutionInfo | None = None


def get_runtime(context_schema: type[Ctx] | None = None) -> Runtime[Ctx]:
    """The ``Runtime`` of the running node (raises outside a run)."""
    task = current_task.get()
    if task is None:
        raise RuntimeError("get_runtime() works only inside a node while the graph runs.")
    return task.runtime
