"""Typed errors. Each message says what went wrong and what to do about it.

The names and base classes follow LangGraph's, so ``except`` clauses written for it keep
working after the import rename.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

__all__ = [
    "RunLockLostError",
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
    "GraphDrained",
    "NodeError",
    "NodeTimeoutError",
    "NodeCancelledError",
    "UnknownInterruptError",
    "RemoteException",
    "is_invalid_resume",
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
        # a list or tuple is kept as given (``exc.args[0]`` is what the raiser passed)
        super().__init__(interrupts if isinstance(interrupts, (list, tuple)) else tuple(interrupts))

    @property
    def interrupts(self) -> tuple[Any, ...]:
        return tuple(self.args[0])


class NodeInterrupt(GraphInterrupt):
    """Deprecated: raise it from a node to pause with ``value``; prefer ``interrupt()``."""

    def __init__(self, value: Any, id: str | None = None) -> None:
        import warnings

        from threadloom.types import Interrupt
        from threadloom.warnings import LangGraphDeprecatedSinceV10

        warnings.warn(
            "NodeInterrupt is deprecated. Please use `langgraph.types.interrupt` instead "
            "(threadloom.types.interrupt).",
            LangGraphDeprecatedSinceV10,
            stacklevel=2,
        )
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


class RunLockLostError(CheckpointConflictError):
    """The run lost its hold on the thread mid-run (the database session holding the run
    lock ended: terminated, timed out, the connection dropped) and could not take it
    back, so another worker may be running the thread. The run stopped before its next
    write; what it saved before is kept. Read the thread with ``get_state`` and resume
    it once no other run holds it.
    """


class GraphDrained(Exception):
    """The run stopped early, at a superstep boundary, because a drain was requested
    (``RunControl.request_drain(reason)``, e.g. on shutdown).

    Everything up to the last finished superstep is checkpointed: ``invoke(None, config)``
    carries on where the drained run stopped.
    """

    def __init__(self, reason: str = "shutdown") -> None:
        super().__init__(f"Graph run drained before completion (reason: {reason}).")
        self.reason = reason


class NodeError(Exception):
    """What a node's error handler receives: which node failed, and with what exception."""

    def __init__(self, node: str, error: BaseException, *, task_id: str | None = None) -> None:
        super().__init__(f"Node '{node}' raised {type(error).__name__}: {error}")
        self.node = node
        self.error = error
        self.task_id = task_id


class NodeTimeoutError(TimeoutError):
    """A node ran longer than its ``TimeoutPolicy`` allows.

    ``kind`` is ``"run"`` (total run time over ``run_timeout``) or ``"idle"`` (no
    progress for ``idle_timeout`` seconds); ``elapsed`` is how long it had run.
    """

    def __init__(
        self,
        node: str,
        elapsed: float,
        *,
        kind: str = "run",
        run_timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        limit = run_timeout if kind == "run" else idle_timeout
        super().__init__(
            f"Node '{node}' timed out after {elapsed:.3g}s ({kind} timeout of {limit}s)."
        )
        self.node = node
        self.elapsed = elapsed
        self.kind = kind
        self.run_timeout = run_timeout
        self.idle_timeout = idle_timeout
        self.timeout = limit  # the limit that fired


class NodeCancelledError(Exception):
    """A node's task was cancelled before it finished (e.g. a sibling failed)."""

    def __init__(self, node: str, reason: str | None = None) -> None:
        super().__init__(f"Node '{node}' was cancelled" + (f": {reason}" if reason else "."))
        self.node = node
        self.reason = reason


class UnknownInterruptError(ValueError):
    """A resume map named an interrupt id that is not pending on the thread.

    ``reason`` says how the answer missed (``"not_pending"``, ``"empty_map"``,
    ``"ambiguous"``), ``interrupt_ids`` the ids it named that are not pending, and
    ``pending_ids`` the ids that wait for an answer.
    """

    def __init__(
        self,
        message: str = "",
        *,
        reason: str = "not_pending",
        interrupt_ids: tuple[str, ...] = (),
        pending_ids: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.interrupt_ids = tuple(interrupt_ids)
        self.pending_ids = tuple(pending_ids)


class RemoteException(Exception):
    """A run of a graph deployed on an Agent Server failed (``RemoteGraph``); the
    message is the server's ``"<ErrorClass>: <message>"``."""


_INVALID_RESUME_MARK = "__threadloom_invalid_resume__"


def mark_invalid_resume(exc: BaseException) -> BaseException:
    """Tag ``exc`` as raised while validating a resume value against a response schema."""
    try:
        setattr(exc, _INVALID_RESUME_MARK, True)
    except AttributeError:  # pragma: no cover - exceptions with __slots__
        pass
    return exc


def is_invalid_resume(exc: BaseException) -> bool:
    """True when ``exc`` was raised because a resume value did not match the
    ``response_schema`` its ``interrupt()`` asked for (so the caller can re-ask)."""
    return bool(getattr(exc, _INVALID_RESUME_MARK, False))
