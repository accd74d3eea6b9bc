"""Reach the running task's config, store and stream writer from anywhere inside a node.

These read the task context the engine sets around every node call, so helper functions
deep in a node (or a tool run by ``ToolNode``) need not thread the values through.
"""

from __future__ import annotations

from typing import Any

from threadloom._context import current_task

__all__ = ["get_config", "get_store", "get_stream_writer"]


def _task() -> Any:
    task = current_task.get()
    if task is None:
        raise RuntimeError(
            "Called get_config outside of a runnable context: this only works inside a node "
            "while the graph runs (invoke/stream)."
        )
    return task


def get_config() -> dict[str, Any]:
    """The ``RunnableConfig`` of the running node (thread id, checkpoint_ns, metadata, ...)."""
    config: dict[str, Any] = _task().config
    return config


def get_store() -> Any:
    """The ``BaseStore`` given to ``compile(store=...)``, or None."""
    return _task().store


def _noop_writer(_chunk: Any) -> None:
    return None


def get_stream_writer() -> Any:
    """A function that emits its argument on ``stream_mode="custom"``.

    Outside a run, or when nobody streams "custom", it is a no-op, so nodes can always
    call it.
    """
    task = current_task.get()
    return task.writer if task is not None else _noop_writer
