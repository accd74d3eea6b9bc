"""Waiting on a superstep's concurrent tasks: wake when all are done or one failed.

``FuturesDict`` maps each running future to its task. Its ``event`` is set once every
future has finished, or as soon as one finishes in a way that should stop the others
(``should_stop``, by default: it raised an exception nobody handles). The caller waits
on the one event instead of polling the futures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["FuturesDict", "should_stop_others"]


def should_stop_others(
    done: Iterable[Any], *, handled_exception_ids: set[int] | frozenset[int] = frozenset()
) -> bool:
    """True if one of the ``done`` futures raised an exception that is not handled
    (handled ones are named by ``id(exception)`` in ``handled_exception_ids``)."""
    for fut in done:
        if fut.cancelled():
            continue
        exc = fut.exception()
        if exc is not None and id(exc) not in handled_exception_ids:
            return True
    return False


class FuturesDict(dict[Any, Any]):
    """``{future: task}`` whose ``event`` wakes the waiter (see the module docstring).

    ``callback`` is a weak reference to ``callback(task, exception_or_None)``, called as
    each future finishes (a dead reference is skipped). ``future_type`` is the future
    class accepted as keys (``concurrent.futures.Future`` or ``asyncio.Future``).
    """

    def __init__(
        self,
        *,
        event: threading.Event | Any,
        callback: Callable[[], Callable[[Any, BaseException | None], None] | None],
        should_stop: Callable[[Iterable[Any]], bool] | None = None,
        future_type: type[Any] | tuple[type[Any], ...] = object,
    ) -> None:
        super().__init__()
        self.event = event
        self.callback = callback
        self.should_stop = should_stop or should_stop_others
        self.future_type = future_type
        self.counter = 0
        self._lock = threading.Lock()

    def __setitem__(self, fut: Any, task: Any) -> None:
        if not isinstance(fut, self.future_type):
            raise TypeError(
                f"FuturesDict holds {self.future_type!r} futures, got {type(fut).__name__}."
            )
        with self._lock:
            self.counter += 1
            self.event.clear()
        super().__setitem__(fut, task)
        fut.add_done_callback(self._on_done)

    def _on_done(self, fut: Any) -> None:
        task = self.get(fut)
        exc = None if fut.cancelled() else fut.exception()
        callback = self.callback()
        if callback is not None and task is not None:
            callback(task, exc)
        with self._lock:
            self.counter -= 1
            if self.counter <= 0 or self.should_stop([fut]):
                self.event.set()
