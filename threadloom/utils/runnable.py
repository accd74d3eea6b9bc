"""``langgraph.utils.runnable``: functions as Runnables (an older import path).

Re-exports :mod:`threadloom._internal._runnable`.
"""

from threadloom._internal._runnable import (
    RunnableCallable,
    RunnableLike,
    RunnableSeq,
    is_async_callable,
    is_async_generator,
)

__all__ = [
    "RunnableCallable",
    "RunnableLike",
    "RunnableSeq",
    "is_async_callable",
    "is_async_generator",
]
