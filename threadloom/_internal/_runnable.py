"""``langgraph._internal._runnable``: functions as Runnables with argument injection.

Re-exports :mod:`threadloom.engine.runnable`, plus ``RunnableLike``: what a graph accepts
as a node (a Runnable, or a sync/async function of the state).
"""

from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.runnables import Runnable

from threadloom.engine.runnable import (
    ASYNCIO_ACCEPTS_CONTEXT,
    RunnableCallable,
    RunnableSeq,
    is_async_callable,
    is_async_generator,
)

RunnableLike = Runnable[Any, Any] | Callable[..., Any] | Callable[..., Awaitable[Any]]
"""A node: a Runnable, or a function (sync or async) taking the state (and config/runtime)."""

__all__ = [
    "ASYNCIO_ACCEPTS_CONTEXT",
    "RunnableCallable",
    "RunnableLike",
    "RunnableSeq",
    "is_async_callable",
    "is_async_generator",
]
