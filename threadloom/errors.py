"""Typed errors. Each message says what went wrong and what to do about it.

The names and base classes follow LangGraph's, so ``except`` clauses written for it keep
working after the import rename.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

__all__ = [
    "ErrorCode",
    "create_error_message",
    "GraphRecursionError",
    "InvalidUpdateError",
    "GraphBubbleUp",
    "GraphInterrupt",
    "NodeInterrupt",
    "ParentCommand",
    "EmptyInputError",
    "EmptyChannelError",
    "TaskNotFound",
    "CheckpointConflictError",
    "PausedWithoutCheckpointerWarning",
]


class ErrorCode(Enum):
    GRAPH_RECURSION_LIMIT = "GRAPH_RECURSION_LIMIT"
    INVALID_CONCURRENT_GRAPH_UPDATE = "INVALID_CONCURRENT_GRAPH_UPDATE"
    INVALID_GRAPH_NODE_RETURN_VALUE = "INVALID_GRAPH_NODE_RETURN_VALUE"
    MULTIPLE_SUBGRAPHS = "MULTIPLE_SUBGRAPHS"
    INVALID_CHAT_HISTORY = "INVALID_CHAT_HISTORY"


def create_error_message(*, message: str, error_code: ErrorCode) -> str:
    """Append a pointer to the troubleshooting page for ``error_code``."""
    return (
        f"{message}\nFor troubleshooting, visit: "
        f"https://docs.langchain.com/oss/python/langgraph/errors/{error_code.value}"
    )


class GraphRecursionError(RecursionError):
    """The run reached ``recursion_limit`` supersteps without finishing.

    Raise the limit with ``graph.invoke(inputs, {"recursion_limit": 100})`` if the graph
    legitimately needs more steps, or check the loop's exit condition.
    """


class InvalidUpdateError(Exception):
    """A node or ``update_state`` produced writes the state cannot take."""


class EmptyChannelError(Exception):
    """Raised by a channel's ``get()`` when it holds no value yet."""


class GraphBubbleUp(Exception):
    """Base of the control-flow exceptions that stop a task without being an error."""


class GraphInterrupt(GraphBubbleUp):
    """A task paused on ``interrupt()``; carries the pending ``Interrupt`` objects.

    It is an ``Exception`` (as in LangGraph), so a bare ``except Exception`` around
    ``interrupt()`` swallows the pause: catch narrower exceptions in nodes.
    """

    def __init__(self, interrupts: Sequence[Any] = ()) -> None:
        super().__init__(tuple(interrupts))

    @property
    def interrupts(self) -> tuple[Any, ...]:
        return self.args[0]


class NodeInterrupt(GraphInterrupt):
    """Deprecated: raise it from a node to pause with ``value``; prefer ``interrupt()``."""

    def __init__(self, value: Any, id: str | None = None) -> None:
        from threadloom.types import Interrupt

        super().__init__([Interrupt(value=value, id=id or "placeholder-id")])


class ParentCommand(GraphBubbleUp):
    """Carries a ``Command(graph=Command.PARENT)`` from a subgraph up to its parent graph."""

    def __init__(self, command: Any) -> None:
        super().__init__(command)

    @property
    def command(self) -> Any:
        return self.args[0]


class PausedWithoutCheckpointerWarning(UserWarning):
    """A run paused that nobody can resume: the graph has no checkpointer."""


class EmptyInputError(Exception):
    """The run was given no input and there is nothing to resume."""


class TaskNotFound(Exception):
    """A task id named in a write or a resume map does not exist."""


class CheckpointConflictError(Exception):
    """Another run advanced this thread first: the checkpoint this run started from is stale.

    Re-read the thread with ``get_state`` and decide again; nothing was written by the run
    that lost the race.
    """
