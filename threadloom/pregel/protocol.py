"""``langgraph.pregel.protocol``: what a parent run hands a nested run to stream through,
and what a graph-like object offers.

A ``StreamProtocol`` is a callable taking one ``(namespace, mode, payload)`` chunk, plus
the set of stream ``modes`` the receiver wants. Code that runs a graph inside a node puts
one in ``config["configurable"]["__pregel_stream"]`` (``CONFIG_KEY_STREAM``) so the nested
run's events reach the outer stream.

``PregelProtocol`` is the surface shared by graphs that run here and graphs that run
elsewhere (:class:`threadloom.pregel.remote.RemoteGraph`): invoke/stream, state reading
and editing, drawing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.runnables import Runnable

__all__ = ["PregelProtocol", "StreamChunk", "StreamProtocol"]

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


class PregelProtocol(Runnable[Any, Any], ABC):
    """The methods every graph-like object implements."""

    @abstractmethod
    def with_config(self, config: Any = None, **kwargs: Any) -> PregelProtocol: ...

    @abstractmethod
    def get_graph(self, config: Any = None, *, xray: int | bool = False) -> Any: ...

    @abstractmethod
    async def aget_graph(self, config: Any = None, *, xray: int | bool = False) -> Any: ...

    @abstractmethod
    def get_state(self, config: Any, *, subgraphs: bool = False) -> Any: ...

    @abstractmethod
    async def aget_state(self, config: Any, *, subgraphs: bool = False) -> Any: ...

    @abstractmethod
    def get_state_history(
        self,
        config: Any,
        *,
        filter: dict[str, Any] | None = None,
        before: Any = None,
        limit: int | None = None,
    ) -> Iterator[Any]: ...

    @abstractmethod
    def aget_state_history(
        self,
        config: Any,
        *,
        filter: dict[str, Any] | None = None,
        before: Any = None,
        limit: int | None = None,
    ) -> AsyncIterator[Any]: ...

    @abstractmethod
    def update_state(
        self, config: Any, values: dict[str, Any] | Any | None, as_node: str | None = None
    ) -> Any: ...

    @abstractmethod
    async def aupdate_state(
        self, config: Any, values: dict[str, Any] | Any | None, as_node: str | None = None
    ) -> Any: ...

    @abstractmethod
    def stream(  # type: ignore[override]  # LangGraph's signature, not Runnable's
        self,
        input: Any,
        config: Any = None,
        *,
        stream_mode: str | Sequence[str] | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        subgraphs: bool = False,
        **kwargs: Any,
    ) -> Iterator[Any]: ...

    @abstractmethod
    def astream(  # type: ignore[override]  # LangGraph's signature, not Runnable's
        self,
        input: Any,
        config: Any = None,
        *,
        stream_mode: str | Sequence[str] | None = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        subgraphs: bool = False,
        **kwargs: Any,
    ) -> AsyncIterator[Any]: ...

    @abstractmethod
    def invoke(
        self,
        input: Any,
        config: Any = None,
        *,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        **kwargs: Any,
    ) -> Any: ...

    @abstractmethod
    async def ainvoke(
        self,
        input: Any,
        config: Any = None,
        *,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        **kwargs: Any,
    ) -> Any: ...
