"""``langgraph._internal._runnable``: functions as Runnables with argument injection.

Re-exports :mod:`threadloom.engine.runnable`.
"""

from threadloom.engine.runnable import (
    ASYNCIO_ACCEPTS_CONTEXT,
    RunnableCallable,
    RunnableSeq,
    is_async_callable,
    is_async_generator,
)

__all__ = [
    "ASYNCIO_ACCEPTS_CONTEXT",
    "RunnableCallable",
    "RunnableSeq",
    "is_async_callable",
    "is_async_generator",
]
