"""``threadloom.pregel.protocol``: what a graph-like object offers, and a stream sink.

``PregelProtocol`` is the surface shared by graphs that run here and graphs that run
elsewhere (:class:`threadloom.pregel.remote.RemoteGraph`): invoke/stream, state
reading and editing, drawing. ``StreamProtocol`` is a stream sink a caller may put in
a node's config (under ``CONFIG_KEY_STREAM``) so a graph running inside that node can
hand its stream events up: it is called with ``(namespace, mode, payload)`` tuples and
says which modes it wants in ``modes``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.runnables import Runnable

__all__ = ["PregelProtocol", "StreamProtocol"]


class StreamProtocol:
    """A callable stream sink with the set of stream modes it accepts."""

    __slots__ = ("_func", "modes")

    def __init__(
        self,
        func: Callable[[tuple[tuple[str, ...], str, Any]], None],
        modes: set[str] | frozenset[str],
    ) -> None:
        self._func = func
        self.modes = modes

    def __call__(self, chunk: tuple[tuple[str, ...], str, Any]) -> None:
        self._func(chunk)

    def __repr__(self) -> str:
        return f"StreamProtocol(modes={sorted(self.modes)!r})"


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
    def stream(
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
    def astream(
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
