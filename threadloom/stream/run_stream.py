"""Run streams: what ``stream_events(version="v3")`` returns.

A run stream pulls the graph's stream parts one at a time, only when a reader needs
more (reading ``run.values``, iterating ``run``, asking ``run.output``), and passes
each through the run's ``StreamMux``. Its projections are the mux's ``extensions``;
the built-in ones are also attributes (``run.values``, ``run.messages``,
``run.lifecycle``, ``run.subgraphs``, and ``run.custom`` etc. when opted in).

``SubgraphRunStream`` is the same surface for one subgraph (an item of
``run.subgraphs``), backed by a child mux; reading it drives the root run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from types import MappingProxyType
from typing import Any

from threadloom.stream.base import ProtocolEvent
from threadloom.stream.events import to_protocol_event
from threadloom.stream.lifecycle_names import SubgraphHandleSurface
from threadloom.stream.mux import StreamMux
from threadloom.stream.stream_channel import StreamChannel

__all__ = [
    "AsyncGraphRunStream",
    "AsyncSubgraphRunStream",
    "GraphRunStream",
    "SubgraphRunStream",
]

_DONE = object()


class _Projections:
    """Attribute access to the native projections of a mux."""

    _mux: StreamMux | None

    @property
    def extensions(self) -> MappingProxyType[str, Any]:
        return MappingProxyType(self._mux.extensions if self._mux is not None else {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        mux = self.__dict__.get("_mux")
        if mux is not None:
            owner = mux.transformer_by_key(name)
            if owner is not None and getattr(type(owner), "_native", False):
                return mux.extensions[name]
        known = sorted(mux.extensions) if mux is not None else []
        raise AttributeError(
            f"{type(self).__name__} has no projection {name!r} (projections: {known}); "
            "register a transformer that provides it with transformers=[...]"
        )


def _unknown(names: tuple[str, ...], extensions: dict[str, Any]) -> None:
    for name in names:
        if name not in extensions:
            raise KeyError(f"No projection named {name!r} (projections: {sorted(extensions)})")
        if not isinstance(extensions[name], StreamChannel):
            raise TypeError(f"Projection {name!r} is not a StreamChannel and cannot be "
                            "interleaved")


def _next_ready(channels: list[tuple[str, StreamChannel[Any]]]) -> tuple[str, Any] | None:
    best: tuple[int, str, StreamChannel[Any]] | None = None
    for name, channel in channels:
        if channel._items:
            stamp = channel._items[0][0]
            if best is None or stamp < best[0]:
                best = (stamp, name, channel)
    if best is None:
        return None
    return best[1], best[2]._items.popleft()[1]


def _all_closed(channels: list[tuple[str, StreamChannel[Any]]]) -> bool:
    for _, channel in channels:
        if not channel._closed:
            return False
    for _, channel in channels:
        if channel._error is not None:
            raise channel._error
    return True


class _RunState(_Projections):
    _mux: StreamMux  # (set by _setup, before anything reads it)

    def _setup(self, mux: StreamMux) -> None:
        self._mux = mux
        self._exhausted = False
        self._error: BaseException | None = None
        self._output: Any = None
        self._interrupts: list[Any] = []

    def _observe(self, part: dict[str, Any]) -> None:
        if part.get("type") == "values" and tuple(part.get("ns") or ()) == self._mux.scope:
            self._output = part.get("data")
            interrupts = part.get("interrupts")
            if interrupts:
                self._interrupts = list(interrupts)


class GraphRunStream(_RunState):
    """The sync run stream of ``graph.stream_events(..., version="v3")``."""

    def __init__(
        self, parts: Iterator[dict[str, Any]] | None, mux: StreamMux, *, wire_pump: bool = True
    ) -> None:
        """``parts``: the graph's stream parts; ``wire_pump=False`` leaves the mux's pump to
        the caller (``mux.bind_pump``), whose pushes then drive the projections."""
        self._setup(mux)
        self._parts = parts if parts is not None else iter(())
        if wire_pump:
            mux._bind_pump(self._pump_one, None)

    # -- driving the graph --------------------------------------------------------------

    def _pump_one(self) -> bool:
        """Pull one stream part through the mux; False once the run has ended."""
        if self._exhausted:
            return False
        try:
            part = next(self._parts)
        except StopIteration:
            self._end()
            return False
        except BaseException as exc:
            self._failed(exc)
            return False
        try:
            self._observe(part)
            self._mux.push(to_protocol_event(part))
        except BaseException as exc:
            self._close_source()
            self._failed(exc)
            return False
        return True

    def _end(self) -> None:
        self._exhausted = True
        try:
            self._mux.close()
        except BaseException as exc:
            self._error = exc
            self._mux._fail_channels(exc)

    def _failed(self, exc: BaseException) -> None:
        self._exhausted = True
        self._error = exc
        self._mux.fail(exc)

    def _close_source(self) -> None:
        close = getattr(self._parts, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()

    def _drain(self) -> None:
        while self._pump_one():
            pass
        if self._error is not None:
            raise self._error

    # -- reading ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[ProtocolEvent]:
        return iter(self._mux._events)

    @property
    def output(self) -> Any:
        """The run's final values (runs it to the end)."""
        self._drain()
        return self._output

    @property
    def interrupted(self) -> bool:
        self._drain()
        return bool(self._interrupts)

    @property
    def interrupts(self) -> tuple[Any, ...]:
        self._drain()
        return tuple(self._interrupts)

    def interleave(self, *names: str) -> Iterator[tuple[str, Any]]:
        """``(name, item)`` from several projections, in the order items were produced."""
        extensions = self._mux.extensions
        _unknown(names, extensions)
        channels = [(name, extensions[name]) for name in names]
        return self._interleave(channels)

    def _interleave(self, channels: list[tuple[str, StreamChannel[Any]]]) -> Iterator[Any]:
        subscribed: list[StreamChannel[Any]] = []
        try:
            for _, channel in channels:
                channel._subscribe(is_async=False)
                subscribed.append(channel)
            while True:
                ready = _next_ready(channels)
                if ready is not None:
                    yield ready
                    continue
                if _all_closed(channels):
                    return
                pump = self._mux._pump
                if (pump is None or not pump()) and _next_ready_empty(channels):
                    _all_closed(channels)
                    return
        finally:
            for channel in subscribed:  # (not one another reader holds)
                channel._unsubscribe()

    # -- stopping ---------------------------------------------------------------------

    def abort(self) -> None:
        """Stop the run now; projections end where they are. Idempotent."""
        if self._exhausted and self._mux.closed:
            return
        self._exhausted = True
        self._close_source()
        with contextlib.suppress(Exception):
            self._mux.close()

    def __enter__(self) -> GraphRunStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.abort()


def _next_ready_empty(channels: list[tuple[str, StreamChannel[Any]]]) -> bool:
    return all(not channel._items for _, channel in channels)


async def _no_parts() -> AsyncIterator[dict[str, Any]]:
    return
    yield  # an async generator that yields nothing


class AsyncGraphRunStream(_RunState):
    """The async run stream of ``await graph.astream_events(..., version="v3")``."""

    def __init__(
        self, parts: AsyncIterator[dict[str, Any]] | None, mux: StreamMux, *,
        wire_pump: bool = True,
    ) -> None:
        """See ``GraphRunStream``."""
        self._setup(mux)
        self._parts = parts if parts is not None else _no_parts()
        self._queue: asyncio.Queue[Any] | None = None
        self._producer: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._aborted = False
        if wire_pump:
            mux._bind_pump(None, self._apump_one)

    # -- driving the graph --------------------------------------------------------------

    async def _produce(self) -> None:
        assert self._queue is not None
        try:
            async for part in self._parts:
                await self._queue.put((True, part))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            await self._queue.put((False, exc))
            return
        finally:
            # stop the graph now (cancelling its running nodes), not when collected
            aclose = getattr(self._parts, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        await self._queue.put((False, _DONE))

    async def _apump_one(self) -> bool:
        if self._exhausted:
            return False
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._exhausted:
                return False
            if self._queue is None:
                self._queue = asyncio.Queue(maxsize=1)
                self._producer = asyncio.ensure_future(self._produce())
            ok, item = await self._queue.get()
            if self._exhausted:
                return False
            if not ok:
                if item is _DONE:
                    await self._aend()
                else:
                    await self._afailed(item)
                return False
            try:
                self._observe(item)
                await self._mux.apush(to_protocol_event(item))
            except BaseException as exc:
                await self._stop_producer()
                await self._afailed(exc)
                return False
            return True

    async def _aend(self) -> None:
        self._exhausted = True
        try:
            await self._mux.aclose()
        except BaseException as exc:
            self._error = exc
            self._mux._fail_channels(exc)

    async def _afailed(self, exc: BaseException) -> None:
        self._exhausted = True
        self._error = exc
        await self._mux.afail(exc)

    async def _stop_producer(self) -> None:
        producer = self._producer
        if producer is not None and not producer.done():
            producer.cancel()
            with contextlib.suppress(BaseException):
                await producer
        elif producer is None:
            aclose = getattr(self._parts, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _adrain(self) -> None:
        while await self._apump_one():
            pass
        if self._error is not None:
            raise self._error

    # -- reading ----------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[ProtocolEvent]:
        return self._mux._events.__aiter__()

    async def output(self) -> Any:
        await self._adrain()
        return self._output

    async def interrupted(self) -> bool:
        await self._adrain()
        return bool(self._interrupts)

    async def interrupts(self) -> tuple[Any, ...]:
        await self._adrain()
        return tuple(self._interrupts)

    def interleave(self, *names: str) -> AsyncIterator[tuple[str, Any]]:
        extensions = self._mux.extensions
        _unknown(names, extensions)
        return self._ainterleave([(name, extensions[name]) for name in names])

    async def _ainterleave(
        self, channels: list[tuple[str, StreamChannel[Any]]]
    ) -> AsyncIterator[tuple[str, Any]]:
        subscribed: list[StreamChannel[Any]] = []
        try:
            for _, channel in channels:
                channel._subscribe(is_async=True)
                subscribed.append(channel)
            while True:
                ready = _next_ready(channels)
                if ready is not None:
                    yield ready
                    continue
                if _all_closed(channels):
                    return
                pump = self._mux._apump
                if (pump is None or not await pump()) and _next_ready_empty(channels):
                    _all_closed(channels)
                    return
        finally:
            for channel in subscribed:  # (not one another reader holds)
                channel._unsubscribe()

    # -- stopping ---------------------------------------------------------------------

    async def abort(self) -> None:
        """Stop the run now (running nodes are cancelled). Idempotent."""
        if self._aborted:
            return
        self._aborted = True
        already = self._exhausted
        self._exhausted = True
        await self._stop_producer()
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait((False, _DONE))
        if not already:
            with contextlib.suppress(Exception):
                await self._mux.aclose()

    async def __aenter__(self) -> AsyncGraphRunStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.abort()


# -- subgraph handles -------------------------------------------------------------------


class _SubgraphHandle(SubgraphHandleSurface, _Projections):
    def __init__(
        self,
        mux: StreamMux,
        *,
        path: tuple[str, ...],
        graph_name: str | None,
        trigger_call_id: str | None,
    ) -> None:
        self._mux = mux
        self.path = tuple(path)
        self.graph_name = graph_name
        self.trigger_call_id = trigger_call_id
        self.status = "started"
        self.error: str | None = None
        self._seen_terminal = False  # set once by the transformer that ends the handle

    def _latest(self) -> Any:
        assert self._mux is not None
        values = self._mux.transformer_by_key("values")
        return getattr(values, "_latest", None)

    def _result(self) -> Any:
        if self.status == "failed":
            raise RuntimeError(self.error or f"subgraph {self.path} failed")
        return self._latest()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, status={self.status!r})"


class SubgraphRunStream(_SubgraphHandle):
    """One direct child subgraph of a sync run: its projections and status."""

    def __iter__(self) -> Iterator[ProtocolEvent]:
        assert self._mux is not None
        return iter(self._mux._events)

    @property
    def output(self) -> Any:
        """The subgraph's last values (drives the run until this subgraph ends)."""
        assert self._mux is not None
        pump = self._mux._pump
        while self.status == "started" and pump is not None and pump():
            pass
        return self._result()

    def abort(self) -> None:
        """Stop following this subgraph (the run goes on)."""
        if self._mux is not None and not self._mux.closed:
            with contextlib.suppress(Exception):
                self._mux.close()


class AsyncSubgraphRunStream(_SubgraphHandle):
    """One direct child subgraph of an async run."""

    def __aiter__(self) -> AsyncIterator[ProtocolEvent]:
        assert self._mux is not None
        return self._mux._events.__aiter__()

    async def output(self) -> Any:
        assert self._mux is not None
        apump = self._mux._apump
        while self.status == "started" and apump is not None and await apump():
            pass
        return self._result()

    async def abort(self) -> None:
        if self._mux is not None and not self._mux.closed:
            with contextlib.suppress(Exception):
                await self._mux.aclose()
