"""Type variables of the public API, for code that annotates graphs, nodes and middleware.

``langgraph.typing`` under the alias: ``StateT`` (a graph's state), ``ContextT`` (the
run-scoped ``context`` a :class:`threadloom.runtime.Runtime` carries, ``None`` when
absent), ``InputT`` / ``OutputT`` (a graph's input and output schemas) and
``NodeInputT`` (what one node takes). They only serve annotations: threadloom reads
schemas from the arguments given to ``StateGraph``, never from these variables.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import TypeVar

StateT = TypeVar("StateT", default=Any)
"""The state of a graph."""
StateT_co = TypeVar("StateT_co", covariant=True, default=Any)
StateT_contra = TypeVar("StateT_contra", contravariant=True, default=Any)

ContextT = TypeVar("ContextT", default=None)
"""The run-scoped context (``invoke(..., context=...)``); ``None`` when the graph has none."""
ContextT_contra = TypeVar("ContextT_contra", contravariant=True, default=None)

InputT = TypeVar("InputT", default=Any)
"""The input schema of a graph."""
OutputT = TypeVar("OutputT", default=Any)
"""The output schema of a graph."""

NodeInputT = TypeVar("NodeInputT", default=Any)
"""What one node takes as its input."""
NodeInputT_contra = TypeVar("NodeInputT_contra", contravariant=True, default=Any)

__all__ = [
    "ContextT",
    "ContextT_contra",
    "InputT",
    "NodeInputT",
    "NodeInputT_contra",
    "OutputT",
    "StateT",
    "StateT_co",
    "StateT_contra",
]
