"""``stream_mode="tools"``: the life of each tool call, as it happens.

Every tool run inside a node (a ``ToolNode`` call, or ``some_tool.invoke(...)`` written
in a node by hand) is reported on the ``tools`` stream as dicts keyed by
``tool_call_id``:

* ``{"event": "tool-started", "tool_call_id", "tool_name", "input"}``
* ``{"event": "tool-output-delta", "tool_call_id", "delta"}``: what the tool emitted with
  ``ToolRuntime.emit_output_delta`` while it runs
* ``{"event": "tool-finished", "tool_call_id", "output"}``: ``output`` is what the tool
  returned (a ``ToolMessage`` when it was called with a tool call, as ``ToolNode`` does)
* ``{"event": "tool-error", "tool_call_id", "message"}``: the tool raised. A pause
  (``interrupt()``) or a drained run is not an error: the call simply ends without a
  last event, and runs again from its start on resume.

A langchain callback handler sees the tool runs; it is attached only when the caller
asks for this mode, so other runs do no work for it. The output deltas go through
``_tool_call_writer``, a context variable ``ToolNode`` sets around each tool it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from threadloom.constants import CONFIG_KEY_SCOPE
from threadloom.errors import GraphDrained, GraphInterrupt

__all__ = [
    "StreamToolCallHandler",
    "emit_tool_output_delta",
    "tool_call_writer",
    "writing_tool_output",
]

# The writer of the tool call running in this context (a function of one delta), or None
# outside any tool ToolNode runs, or when nobody streams "tools".
_tool_call_writer: ContextVar[Callable[[Any], None] | None] = ContextVar(
    "threadloom_tool_call_writer", default=None
)

def _namespace(metadata: dict[str, Any] | None) -> tuple[str, ...] | None:
    """The namespace of the graph whose node runs the tool, from the run metadata."""
    ns = (metadata or {}).get("langgraph_checkpoint_ns")
    if ns is None:
        return None
    parts = ns.split("|")[:-1]
    return tuple(parts)


class StreamToolCallHandler(BaseCallbackHandler):
    """Reports the tool runs of a graph run as ``tools`` stream events.

    ``emit(namespace, payload)`` receives each event; ``namespace`` is the graph whose
    node ran the tool (``None`` when the tool ran outside any node's run metadata, for
    the caller to place).
    """

    run_inline = True
    raise_error = False

    def __init__(self, emit: Callable[[tuple[str, ...] | None, dict[str, Any]], None]) -> None:
        self.emit = emit
        # run id -> (namespace, tool_call_id) of the tool runs started and not yet ended
        self.runs: dict[UUID, tuple[tuple[str, ...] | None, Any]] = {}

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        ns = _namespace(metadata)
        call_id = kwargs.get("tool_call_id") or str(run_id)
        self.runs[run_id] = (ns, call_id)
        name = kwargs.get("name") or (serialized or {}).get("name") or ""
        self.emit(ns, {
            "event": "tool-started",
            "tool_call_id": call_id,
            "tool_name": name,
            "input": inputs if inputs is not None else input_str,
        })

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self.runs.pop(run_id, None)
        if run is None:
            return
        ns, call_id = run
        self.emit(ns, {"event": "tool-finished", "tool_call_id": call_id, "output": output})

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self.runs.pop(run_id, None)
        if run is None or isinstance(error, (GraphInterrupt, GraphDrained)):
            return
        ns, call_id = run
        self.emit(ns, {"event": "tool-error", "tool_call_id": call_id, "message": str(error)})


def tool_call_writer(
    config: Mapping[str, Any] | None, tool_call_id: Any
) -> Callable[[Any], None] | None:
    """The writer of ``tool-output-delta`` events for one call a node makes, or None when
    the run does not stream ``tools`` (or ``config`` is not a graph node's)."""
    if not config:
        return None
    scope = (config.get("configurable") or {}).get(CONFIG_KEY_SCOPE)
    if scope is None or "tools" not in scope.modes or scope.sink is None:
        return None
    ns = _namespace(config.get("metadata"))
    if ns is None:
        ns = tuple(scope.ns.split("|")) if scope.ns else ()
    sink = scope.sink

    def write(delta: Any) -> None:
        sink(ns, "tools", {"event": "tool-output-delta", "tool_call_id": tool_call_id,
                           "delta": delta})

    return write


@contextmanager
def writing_tool_output(
    config: Mapping[str, Any] | None, tool_call_id: Any
) -> Iterator[None]:
    """Route ``emit_tool_output_delta`` (``ToolRuntime.emit_output_delta``) to the
    ``tools`` stream of the run ``config`` belongs to, while the block runs."""
    writer = tool_call_writer(config, tool_call_id)
    token = _tool_call_writer.set(writer)
    try:
        yield
    finally:
        _tool_call_writer.reset(token)


def emit_tool_output_delta(delta: Any) -> None:
    """Stream ``delta`` as partial output of the tool call running here (a no-op outside
    a tool ``ToolNode`` runs, or when nobody streams ``tools``)."""
    writer = _tool_call_writer.get()
    if writer is not None:
        writer(delta)
