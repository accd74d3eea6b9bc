"""``DeadlineSweeper``: the workers apply the passed deadlines of pending approvals.

An approval request may carry a deadline (``threadloom.hitl.Deadline``): when it passes,
its ``on_timeout`` decision applies. The deadline is in the request, hence in the
checkpoint; something only has to look from time to time. In the server that is the
worker: every ``interval`` seconds, one worker process at a time (``Storage.lead``)
looks at the paused threads of each served graph that carries ``ApprovalHooks`` and,
for a thread with a due request, queues a run answering it with the deadline's
decision (``RunService.queue_deadlines``). That run goes through the queue like any
other - one run per thread, the thread's record updated, the decision checked and
audited as ``threadloom:deadline``'s - and a thread that is busy is left for the next
sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from threadloom.server.context import ServerContext
from threadloom.server.errors import Conflict
from threadloom.server.records import system_assistant_id

__all__ = ["DeadlineSweeper"]

log = logging.getLogger("threadloom.server")


def _approval_hooks(graph: Any) -> Any:
    from threadloom.hitl.hooks import ApprovalHooks

    for hook in getattr(graph, "hooks", None) or ():
        if isinstance(hook, ApprovalHooks):
            return hook
    return None


class DeadlineSweeper:
    """Queues the runs applying passed approval deadlines (see the module docstring)."""

    def __init__(self, ctx: ServerContext, runs: Any) -> None:
        self.ctx = ctx
        self.runs = runs
        self._task: asyncio.Task | None = None

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Queue a deadline run for every paused thread with a request due at ``now``
        (default: each graph's approval clock); their run ids. Nothing when another
        process has the duty."""
        from threadloom.hitl.clock import to_iso
        from threadloom.hitl.deadlines import due_requests
        from threadloom.hitl.hooks import graph_identity

        if not await self.ctx.storage.lead("deadlines"):
            return []
        queued: list[str] = []
        for graph_id in self.ctx.graphs.ids():
            graph = self.ctx.graphs.get(graph_id)
            hooks = _approval_hooks(graph)
            if hooks is None:
                continue
            at = now.astimezone(UTC) if now is not None else hooks.now()
            identity = graph_identity(graph)
            threads = await self.ctx.storage.search_threads(
                ids=None, metadata={"graph_id": graph_id}, values=None, status="interrupted",
                limit=-1, offset=0, sort_by="updated_at", sort_order="asc",
            )
            for thread in threads:
                if not thread.get("interrupts"):
                    continue  # a static pause (interrupt_before): no request to time out
                thread_id = thread["thread_id"]
                try:
                    snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
                    due = due_requests(snapshot.interrupts, at, identity)
                    if not due:
                        continue
                    assistant_id = (thread.get("metadata") or {}).get(
                        "assistant_id") or system_assistant_id(graph_id)
                    run = await self.runs.queue_deadlines(thread_id, assistant_id, due,
                                                          to_iso(at))
                    queued.append(run["run_id"])
                except Conflict:
                    continue  # busy: someone is answering it right now; next sweep
                except Exception:  # one broken thread must not stop the sweep
                    log.exception("applying the deadlines of thread %s failed", thread_id)
        return queued

    async def start(self, interval: float) -> None:
        """Sweep every ``interval`` seconds in the background."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.tick()
                except Exception:
                    log.exception("applying approval deadlines failed")

        self._task = asyncio.create_task(loop(), name="threadloom-deadlines")

    async def stop(self) -> None:
        """Stop sweeping."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
