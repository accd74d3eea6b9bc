"""The vocabulary of ``stream_events(version="v3")``: protocol events and transformers.

A run's stream parts (``{"type": mode, "ns": namespace, "data": payload}``) become
*protocol events*::

    {"type": "event", "method": "values", "seq": 3,
     "params": {"namespace": ["child:1"], "timestamp": 1700000000000, "data": {...}}}

and go, one by one, through the run's ``StreamTransformer``\\ s (see ``StreamMux``). A
transformer watches events and feeds *projections* (usually ``StreamChannel``\\ s) that
the caller reads (``run.values``, ``run.subgraphs``, ``run.extensions["mine"]``); it
can also drop an event from the main log by returning False from ``process``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, ClassVar, Literal, NotRequired, TypedDict

__all__ = ["ProtocolEvent", "ProtocolParams", "StreamTransformer"]

logger = logging.getLogger("threadloom.stream")


class ProtocolParams(TypedDict):
    namespace: list[str]
    timestamp: int
    data: Any
    interrupts: NotRequired[tuple[Any, ...]]


class ProtocolEvent(TypedDict):
    type: Literal["event"]
    method: str
    params: ProtocolParams
    seq: NotRequired[int]


class StreamTransformer:
    """Watches a run's protocol events and builds projections from them.

    Subclasses implement ``init`` (return the projections, a dict name -> object) and
    ``process`` (or ``aprocess`` for an async-only transformer); ``finalize`` / ``fail``
    run when the run ends. ``scope`` is the namespace the transformer is built for:
    the root run's is ``()``, a subgraph handle's mini-run has the subgraph's path.

    Class settings:

    * ``required_stream_modes``: the graph stream modes this transformer needs; the run
      asks the graph for the union of them.
    * ``before_builtins``: register ahead of the built-in transformers (to rewrite
      events before they are projected).
    * ``requires_async``: only usable in an async run (``astream_events``).
    * ``supports_sync``: an async-capable transformer that also works in sync runs.
    """

    required_stream_modes: ClassVar[tuple[str, ...]] = ()
    before_builtins: ClassVar[bool] = False
    requires_async: ClassVar[bool] = False
    supports_sync: ClassVar[bool] = False
    _native: ClassVar[bool] = False

    scope: tuple[str, ...] = ()

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        self.scope = tuple(scope)

    # -- the interface ----------------------------------------------------------------

    def init(self) -> dict[str, Any]:
        """The projections this transformer offers, by name."""
        return {}

    def process(self, event: ProtocolEvent) -> bool:
        """See one event; return False to keep it off the main event log."""
        return True

    async def aprocess(self, event: ProtocolEvent) -> bool:
        return self.process(event)

    def finalize(self) -> None:
        """The run ended normally."""

    async def afinalize(self) -> None:
        self.finalize()

    def fail(self, err: BaseException) -> None:
        """The run ended with ``err``."""

    async def afail(self, err: BaseException) -> None:
        self.fail(err)

    def _on_register(self, mux: Any) -> None:
        """Called once when a ``StreamMux`` registers this transformer (after ``init``).

        A transformer that builds child muxes for subgraphs (``mux._make_child``)
        keeps *mux* here; the default does nothing.
        """

    # -- background work (async runs) ---------------------------------------------------

    def schedule(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        on_error: Literal["log", "raise"] = "log",
    ) -> asyncio.Task[Any]:
        """Run ``coro`` alongside the stream; the run waits for it before finalizing.

        ``on_error="log"`` logs a failure; ``"raise"`` fails the run with it.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"{type(self).__name__}.schedule() requires a running event loop: "
                "scheduled work is only available in async runs (astream_events)"
            ) from None
        if on_error not in ("log", "raise"):
            raise ValueError(f"on_error must be 'log' or 'raise', got {on_error!r}")
        task = loop.create_task(coro)
        scheduled = self.__dict__.setdefault("_scheduled", [])
        scheduled.append((task, on_error))
        return task

    def _take_scheduled(self) -> list[tuple[asyncio.Task[Any], str]]:
        scheduled: list[tuple[asyncio.Task[Any], str]] = self.__dict__.pop("_scheduled", [])
        return scheduled

    # -- introspection used by StreamMux --------------------------------------------------

    @classmethod
    def _is_async_only(cls) -> bool:
        if cls.requires_async:
            return True
        overrides = cls.aprocess is not StreamTransformer.aprocess
        return overrides and not cls.supports_sync
