"""``LocalStreams``: run event streams inside one process.

Used by ``SqliteStorage`` (the run and its listeners share the process). Each run has
a counter (event ids ``1``, ``2``, ... strictly increasing), the events kept for replay
(``stream_resumable``), and the queues of its live subscribers. A closed stream is
remembered for ``retain_seconds`` so a late join (or a reconnect with
``Last-Event-ID``) still replays it and ends at once.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from threadloom.server.storage.base import StreamEvent

__all__ = ["LocalStreams"]


class _Closed(enum.Enum):
    """What a listener's queue gets after the stream's last event."""

    CLOSED = enum.auto()


_CLOSED = _Closed.CLOSED
_Listener = asyncio.Queue[StreamEvent | _Closed]


@dataclass
class _Stream:
    seq: int = 0
    kept: list[StreamEvent] = field(default_factory=list)
    listeners: list[_Listener] = field(default_factory=list)
    closed_at: float | None = None


class LocalStreams:
    """In-process run streams (see the module docstring)."""

    def __init__(self, *, retain_seconds: float = 600.0, max_closed: int = 10_000) -> None:
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        # closed streams' run ids, oldest closing first (expiry looks at the front only)
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._retain = retain_seconds
        self._max_closed = max_closed

    def _get(self, run_id: str) -> _Stream:
        stream = self._streams.get(run_id)
        if stream is None:
            stream = self._streams[run_id] = _Stream()
        return stream

    def publish(self, run_id: str, event: str, data: bytes, *, keep: bool) -> str:
        """Give the event the run's next id, keep it if asked, hand it to listeners."""
        stream = self._get(run_id)
        stream.seq += 1
        item = StreamEvent(str(stream.seq), event, data)
        if keep:
            stream.kept.append(item)
        for queue in stream.listeners:
            queue.put_nowait(item)
        return item.id

    def close(self, run_id: str) -> None:
        """No more events: listeners end; the stream is remembered for a while."""
        stream = self._get(run_id)
        stream.closed_at = time.monotonic()
        for queue in stream.listeners:
            queue.put_nowait(_CLOSED)
        stream.listeners.clear()
        self._closed[run_id] = None
        self._closed.move_to_end(run_id)
        self._expire(stream.closed_at)

    def _expire(self, now: float) -> None:
        """Forget the streams closed longer than ``retain_seconds`` ago, and the oldest
        closed ones beyond ``max_closed`` (each close looks only at the oldest few)."""
        while self._closed:
            oldest = next(iter(self._closed))
            stream = self._streams.get(oldest)
            if stream is not None and stream.closed_at is not None and (
                len(self._closed) <= self._max_closed
                and now - stream.closed_at <= self._retain
            ):
                break
            del self._closed[oldest]
            if stream is not None and stream.closed_at is not None:
                del self._streams[oldest]

    def subscribe(
        self,
        run_id: str,
        *,
        after: str | None,
        is_finished: Callable[[], Awaitable[bool]],
    ) -> AsyncIterator[StreamEvent]:
        """Replay kept events after ``after``, then follow live ones until closed.

        Listening starts when this is called (not when iteration starts), so a caller
        that subscribes before queueing a run sees all its events. ``is_finished`` is
        asked when this process has no stream for the run (one that ended before the
        process remembered it): then nothing follows.
        """
        stream = self._streams.get(run_id)
        queue: _Listener = asyncio.Queue()
        if stream is not None and stream.closed_at is None:
            stream.listeners.append(queue)
            return self._follow(run_id, stream, queue, after, is_finished, live=True)
        return self._follow(run_id, stream, queue, after, is_finished, live=False)

    def open(self, run_id: str) -> None:
        """Make the run's stream now, so subscribers attach before it publishes."""
        self._get(run_id)

    async def _follow(
        self,
        run_id: str,
        stream: _Stream | None,
        queue: _Listener,
        after: str | None,
        is_finished: Callable[[], Awaitable[bool]],
        *,
        live: bool,
    ) -> AsyncIterator[StreamEvent]:
        if stream is None:
            if await is_finished():
                return
            stream = self._get(run_id)
        if not live and stream.closed_at is None:
            stream.listeners.append(queue)
            live = True
        last = _parse(after)
        replay = [e for e in stream.kept if int(e.id) > last] if after is not None else []
        closed = not live
        try:
            for item in replay:
                last = int(item.id)
                yield item
            if closed:
                return
            while True:
                got = await queue.get()
                if got is _CLOSED:
                    return
                if int(got.id) <= last:
                    continue
                last = int(got.id)
                yield got
        finally:
            if queue in stream.listeners:
                stream.listeners.remove(queue)


def _parse(event_id: str | None) -> int:
    if not event_id:
        return 0
    try:
        return int(str(event_id).split("-", 1)[0])
    except ValueError:
        return 0
