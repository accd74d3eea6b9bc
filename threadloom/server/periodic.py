"""``Periodic``: a coroutine run every few seconds in the background (crons, thread TTLs).

A failing call is logged and the next one happens as planned: the server lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Periodic"]

log = logging.getLogger("threadloom.server")


class Periodic:
    """Calls ``fn()`` every ``interval`` seconds between ``start`` and ``stop``."""

    def __init__(self, name: str, fn: Callable[[], Awaitable[Any]]) -> None:
        self.name = name
        self.fn = fn
        self._task: asyncio.Task[None] | None = None

    def start(self, interval: float) -> None:
        """Start calling (the first call after ``interval`` seconds)."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.fn()
                except Exception:
                    log.exception("%s failed", self.name)

        self._task = asyncio.create_task(loop(), name=f"threadloom-{self.name}")

    async def stop(self) -> None:
        """Stop calling (a call in progress is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
