"""``Periodic``: a coroutine run every few seconds in the background (crons, thread TTLs).

A failing call is logged (``log_failure``) and the next one happens as planned: the
server lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threadloom.server.storage.base import Storage

__all__ = ["Periodic", "cancel", "log_failure"]

log = logging.getLogger("threadloom.server")


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has ended (None: nothing to do)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def log_failure(storage: Storage, what: str, error: BaseException) -> None:
    """Log that ``what`` failed with ``error``, in the background of the server (it is
    tried again later): one warning line when the storage's database went away (a
    restart is no bug: every background loop would print its traceback), else the
    error with its traceback."""
    if storage.unavailable(error):
        log.warning("%s failed: the database went away (%s: %s); trying again later",
                    what, type(error).__name__, str(error).strip())
    else:
        log.error("%s failed", what, exc_info=error)


class Periodic:
    """Calls ``fn()`` every ``interval`` seconds between ``start`` and ``stop``;
    ``storage``: the server's (to tell its database going away from a bug)."""

    def __init__(self, name: str, fn: Callable[[], Awaitable[Any]], storage: Storage
                 ) -> None:
        self.name = name
        self.fn = fn
        self.storage = storage
        self._task: asyncio.Task[None] | None = None

    def start(self, interval: float) -> None:
        """Start calling (the first call after ``interval`` seconds)."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.fn()
                except Exception as exc:
                    log_failure(self.storage, self.name, exc)

        self._task = asyncio.create_task(loop(), name=f"threadloom-{self.name}")

    async def stop(self) -> None:
        """Stop calling (a call in progress is cancelled)."""
        await cancel(self._task)
        self._task = None
