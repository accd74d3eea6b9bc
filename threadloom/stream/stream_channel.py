"""``StreamChannel``: one projection of a run's event stream, read by one consumer.

A channel is a buffer of items with at most one subscriber. It is lazy: until a
consumer subscribes (by iterating it), pushes are dropped, so projections nobody reads
cost nothing. Items are removed as they are consumed (drain on consume), and each item
carries a stamp from its run's counter (``StreamMux``; 0 for a channel no run wires) so
several channels can be read in the order their items were pushed
(``GraphRunStream.interleave``).

A channel is bound to sync or async iteration once (the run binds it). When its buffer
is empty and it is still open, the reader asks the run for more events through the
pump the run installed (``_pump`` for sync, ``_apump`` for async), so reading a
projection drives the graph.

A named channel (``StreamChannel("name")``) is also forwarded to the run's main event
log as a protocol event when a ``StreamMux`` wires it (``custom:name``, or ``name`` for
the built-in transformers).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["StreamChannel"]

T = TypeVar("T")

def _no_stamp() -> int:
    return 0


class StreamChannel(Generic[T]):
    """A single-subscriber, drain-on-consume buffer of stream items."""

    def __init__(self, name: str | None = None, *, maxlen: int | None = None) -> None:
        if maxlen is not None and (
            isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1
        ):
            raise ValueError(f"StreamChannel maxlen must be a positive int or None, got {maxlen!r}")
        self._name = name
        self._maxlen = maxlen
        self._items: deque[tuple[int, T]] = deque()
        self._subscribed = False
        self._closed = False
        self._error: BaseException | None = None
        self._is_async: bool | None = None
        self._wire_fn: Callable[[T], None] | None = None
        self._fanout: list[StreamChannel[T]] | None = None
        # set by the run: ask for more events (sync: returns False when none will come)
        self._pump: Callable[[], bool] | None = None
        self._apump: Callable[[], Any] | None = None
        self._waiter: asyncio.Event | None = None
        # the run's counter: the order in which items were pushed across its channels
        self._stamp: Callable[[], int] = _no_stamp

    @property
    def name(self) -> str | None:
        return self._name

    # -- wiring (by StreamMux / the run) ------------------------------------------------

    def _bind(self, *, is_async: bool) -> None:
        if self._is_async is not None:
            raise RuntimeError(
                f"StreamChannel {self._name or ''!s} is already bound to "
                f"{'async' if self._is_async else 'sync'} mode"
            )
        self._is_async = is_async

    def _set_stamper(self, stamp: Callable[[], int]) -> None:
        self._stamp = stamp
        for child in self._fanout or ():
            child._set_stamper(stamp)

    def _wire(self, fn: Callable[[T], None] | None) -> None:
        self._wire_fn = fn

    def _set_pump(self, pump: Callable[[], bool] | None, apump: Callable[[], Any] | None) -> None:
        self._pump = pump
        self._apump = apump
        for child in self._fanout or ():
            child._set_pump(pump, apump)

    # -- producing ------------------------------------------------------------------------

    def push(self, item: T) -> None:
        if self._closed:
            raise RuntimeError("Cannot push to a closed StreamChannel")
        if self._wire_fn is not None:
            self._wire_fn(item)
        if self._fanout is not None:
            for child in self._fanout:
                if not child._closed:
                    child.push(item)
            return
        if not self._subscribed:
            return
        self._items.append((self._stamp(), item))
        if self._maxlen is not None:
            while len(self._items) > self._maxlen:
                self._items.popleft()
        self._wake()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for child in self._fanout or ():
            child.close()
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self._closed:
            return
        self._error = error
        self._closed = True
        for child in self._fanout or ():
            child.fail(error)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            self._waiter.set()

    # -- consuming ------------------------------------------------------------------------

    def _subscribe(self, is_async: bool) -> None:
        if self._is_async is None:
            raise TypeError(
                "StreamChannel has not been bound to a run yet: iterate it through the run "
                "stream that owns it"
            )
        if self._is_async and not is_async:
            raise TypeError("StreamChannel is bound to async mode: use 'async for'")
        if not self._is_async and is_async:
            raise TypeError("StreamChannel is bound to sync mode: use a plain 'for'")
        if self._subscribed or self._fanout is not None:
            raise RuntimeError("StreamChannel already has a subscriber")
        self._subscribed = True

    def _unsubscribe(self) -> None:
        self._subscribed = False
        self._items.clear()

    def __iter__(self) -> Iterator[T]:
        self._subscribe(is_async=False)
        return self._sync_cursor()

    def _sync_cursor(self) -> Iterator[T]:
        try:
            while True:
                if self._items:
                    yield self._items.popleft()[1]
                    continue
                if self._closed:
                    if self._error is not None:
                        raise self._error
                    return
                pump = self._pump
                if pump is None or not pump():
                    if not self._items and not self._closed:
                        return  # nothing drives this channel any more
        finally:
            self._unsubscribe()

    def __aiter__(self) -> AsyncIterator[T]:
        self._subscribe(is_async=True)
        return self._async_cursor()

    async def _async_cursor(self) -> AsyncIterator[T]:
        try:
            while True:
                if self._items:
                    yield self._items.popleft()[1]
                    continue
                if self._closed:
                    if self._error is not None:
                        raise self._error
                    return
                if self._apump is not None:
                    more = await self._apump()
                    if not more and not self._items and not self._closed:
                        return
                    continue
                if self._waiter is None:
                    self._waiter = asyncio.Event()
                self._waiter.clear()
                await self._waiter.wait()
        finally:
            self._unsubscribe()

    # -- fan-out --------------------------------------------------------------------------

    def _split(self, n: int) -> list[StreamChannel[T]]:
        if self._is_async is None:
            raise TypeError("StreamChannel has not been bound to a run yet")
        if self._subscribed or self._fanout is not None:
            raise RuntimeError("StreamChannel already has a subscriber")
        children: list[StreamChannel[T]] = []
        for _ in range(n):
            child: StreamChannel[T] = StreamChannel(self._name, maxlen=self._maxlen)
            child._bind(is_async=self._is_async)
            child._set_pump(self._pump, self._apump)
            child._set_stamper(self._stamp)
            child._subscribed = True
            if self._closed:
                child._closed = True
                child._error = self._error
            children.append(child)
        self._fanout = children
        return children

    def tee(self, n: int = 2) -> tuple[Iterator[T], ...]:
        """``n`` independent sync readers that each see every later item."""
        children = self._split(n)
        for child in children:
            child._subscribed = False
        return tuple(iter(child) for child in children)

    def atee(self, n: int = 2) -> tuple[AsyncIterator[T], ...]:
        """``n`` independent async readers that each see every later item."""
        children = self._split(n)
        for child in children:
            child._subscribed = False
        return tuple(child.__aiter__() for child in children)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"StreamChannel({self._name!r}, {state}, {len(self._items)} buffered)"
