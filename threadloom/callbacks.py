"""Graph lifecycle callbacks: be told when a run pauses on ``interrupt()`` and when it
is resumed.

Subclass :class:`GraphCallbackHandler` and pass it among the run's callbacks
(``config={"callbacks": [handler]}``); other langchain callback handlers in the same list
are left alone. A handler that raises is skipped (the run goes on) unless it sets
``raise_error = True``. ``on_interrupt``/``on_resume`` may be ``async def``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager

__all__ = ["GraphCallbackHandler", "GraphInterruptEvent", "GraphResumeEvent"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraphInterruptEvent:
    """A run paused: the pending ``interrupts`` of the graph at ``checkpoint_ns``
    (``()`` for the root graph)."""

    interrupts: tuple[Any, ...]
    checkpoint_ns: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class GraphResumeEvent:
    """A paused run was resumed with ``Command(resume=...)``."""

    resume: Any = None
    checkpoint_ns: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict, repr=False)


class GraphCallbackHandler(BaseCallbackHandler):
    """Override ``on_interrupt`` and/or ``on_resume``; both do nothing by default."""

    def on_interrupt(self, event: GraphInterruptEvent) -> Any:
        """Called once when the run pauses with pending interrupts."""

    def on_resume(self, event: GraphResumeEvent) -> Any:
        """Called once when a run starts by resuming pending interrupts."""


class _GraphCallbackManager(BaseCallbackManager):
    """A callback manager holding graph handlers among ordinary ones (any handler may
    be added; only ``GraphCallbackHandler``s receive lifecycle events)."""

    def __init__(self, handlers: Sequence[BaseCallbackHandler] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(handlers=list(handlers or []), **kwargs)

    @property
    def graph_handlers(self) -> list[GraphCallbackHandler]:
        return [h for h in self.handlers if isinstance(h, GraphCallbackHandler)]


def graph_handlers(callbacks: Any) -> list[GraphCallbackHandler]:
    """The graph handlers among a config's ``callbacks`` (a list or a manager)."""
    if callbacks is None:
        return []
    handlers = callbacks if isinstance(callbacks, list) else getattr(callbacks, "handlers", [])
    seen: list[GraphCallbackHandler] = []
    for h in handlers:
        if isinstance(h, GraphCallbackHandler) and h not in seen:
            seen.append(h)
    return seen


def _failed(handler: GraphCallbackHandler, exc: Exception) -> None:
    if getattr(handler, "raise_error", False):
        raise exc
    logger.warning("Graph callback %s failed: %r", type(handler).__name__, exc)


def _await_here(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # a sync run inside a running event loop: run the coroutine on a helper thread
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def dispatch(callbacks: Any, method: str, event: Any) -> None:
    """Call ``method`` (``"on_interrupt"``/``"on_resume"``) on every graph handler."""
    for handler in graph_handlers(callbacks):
        try:
            result = getattr(handler, method)(event)
            if inspect.isawaitable(result):
                _await_here(result)
        except Exception as exc:  # noqa: BLE001 - one handler must not break the run
            _failed(handler, exc)


async def adispatch(callbacks: Any, method: str, event: Any) -> None:
    """Async ``dispatch``: coroutine handlers are awaited on the running loop."""
    for handler in graph_handlers(callbacks):
        try:
            result = getattr(handler, method)(event)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001
            _failed(handler, exc)
