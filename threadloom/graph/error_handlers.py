"""Error handlers: a node that runs when another node fails (after its retries).

``add_node(..., error_handler=fn)`` (or ``set_node_defaults(error_handler=fn)`` for every
node without one) turns a node's final failure into a step of the graph: the failed task
writes a ``Send`` to a hidden handler node (``__error_handler__<node>``, or
``__default_error_handler__``) carrying which node failed and with what error. The handler
starts at once, in the same superstep, beside the tasks still running (the engine turns the
``Send`` into a task of that step, see ``Loop._error_handler_task``; a breakpoint before the
handler defers it to the next superstep instead). It reads the step's state, takes the
failure as ``error: NodeError`` (and ``config``/``runtime``/... like any node), and returns
an update or a ``Command``; its writes stand for the failed node's in that step. Because
the ``Send`` is stored as the failed task's pending write, a handler that crashes runs
again on resume, without running the failed node again (one that finished keeps its
stored writes). Interrupts never reach handlers; a failing handler fails the run.
"""

from __future__ import annotations

import inspect
from typing import Any

from threadloom._context import current_task
from threadloom.engine.node import _INJECTABLE, _is_async, _signature_target
from threadloom.errors import NodeError

DEFAULT_HANDLER = "__default_error_handler__"
NODE_HANDLER_PREFIX = "__error_handler__"


def handler_name(node: str, *, default: bool) -> str:
    return DEFAULT_HANDLER if default else NODE_HANDLER_PREFIX + node


def handler_body(name: str, handler: Any, read_state: Any) -> Any:
    """The handler node's function: reads the state, builds the ``NodeError``, calls
    ``handler`` with what its signature asks for."""
    try:
        params = inspect.signature(_signature_target(handler)).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    wants = tuple(n for n in (*_INJECTABLE, "error") if n in params)

    def arguments(payload: Any) -> tuple[Any, dict[str, Any]]:
        task = current_task.get()
        state = read_state(task.channels, task.managed)
        error = payload.get("error") if isinstance(payload, dict) else payload
        node = payload.get("node", "") if isinstance(payload, dict) else ""
        if not isinstance(error, BaseException):
            error = RuntimeError(str(error))
        kwargs = {}
        for want in wants:
            kwargs[want] = (
                NodeError(node, error, task_id=payload.get("task_id"))
                if want == "error" else getattr(task, want)
            )
        return state, kwargs

    if _is_async(handler):
        async def run_handler_async(payload: Any) -> Any:
            state, kwargs = arguments(payload)
            return await handler(state, **kwargs)

        run_handler_async.__name__ = name
        return run_handler_async

    def run_handler(payload: Any) -> Any:
        state, kwargs = arguments(payload)
        return handler(state, **kwargs)

    run_handler.__name__ = name
    return run_handler
