"""``langgraph.pregel.protocol``: what a parent run hands a nested run to stream through.

A ``StreamProtocol`` is a callable taking one ``(namespace, mode, payload)`` chunk, plus
the set of stream ``modes`` the receiver wants. Code that runs a graph inside a node puts
one in ``config["configurable"]["__pregel_stream"]`` (``CONFIG_KEY_STREAM``) so the nested
run's events reach the outer stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["StreamChunk", "StreamProtocol"]

StreamChunk = tuple[tuple[str, ...], str, Any]
"""One stream event: ``(namespace, mode, payload)``."""


class StreamProtocol:
    """A stream sink: ``protocol(chunk)`` forwards one chunk; ``modes`` says which it wants."""

    __slots__ = ("func", "modes")

    def __init__(self, func: Callable[[StreamChunk], None], modes: set[str]) -> None:
        self.func = func
        self.modes = modes

    def __call__(self, chunk: StreamChunk) -> None:
        self.func(chunk)

    def __repr__(self) -> str:
        return f"StreamProtocol({self.func!r}, modes={sorted(self.modes)!r})"
