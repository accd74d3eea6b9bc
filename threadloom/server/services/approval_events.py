"""Approval events as they happen, and the deadlines the server applies.

``ApprovalFeed`` looks at the pending approvals of every thread each ``interval``
seconds (and at once after a decision this server applied), compares them with what
it saw the time before, and hands every subscriber the events:

* ``requested`` - a new request is waiting (or a request now proposes something else);
* ``answered`` - someone answered it: decided, or counted toward its quorum;
* ``expired`` - its deadline decided it (or handed it to another group);
* ``withdrawn`` - it left without an answer (the thread moved on, or was deleted).

It reads only thread records and audit logs, so it sees changes whatever process made
them (a run of this server, a client's ``update_state``, another server on the same
database). A look costs what changed, not what waits: it reads the versions of the
threads that may hold something pending (ids and ``updated_at`` from their index,
``Storage.pending_thread_versions``), then the records of those new or changed since the
look before - not thousands of waiting threads' values every second - and applies
deadlines only on threads whose earliest deadline has come. On PostgreSQL a thread
record changing wakes it at once (LISTEN/NOTIFY, ``Storage.watch_threads``): a feed that
applies no deadlines (the API process) then looks only when woken (and every
``idle_interval`` as a safety net), not every second.

A feed nobody listens to does no more than its duties need: one that applies no
deadlines and has no subscribers (the API process, most of the time) does not look at
all - it forgets what it saw, and ``catch_up`` (called by a new subscriber before its
first event) looks again to learn what is pending then; one that applies deadlines but
has neither subscribers nor a webhook still looks, but does not read the audit logs
that only name the reason for its events (``ApprovalService.reason_gone``).

With ``sweep`` (servers running a worker), the process applying deadlines also POSTs the
events to the configured webhook (``"webhooks": {"url": ...}``; see
``threadloom.server.webhooks``). Each look also applies the deadlines that
passed: a thread with due requests gets a run answering them with the deadlines'
decisions - what ``threadloom sweep`` does for a library graph - recorded in the audit
log as made by ``threadloom:deadline``. A person's late answer is refused from the
moment the deadline passes, so the two never race. With several worker processes
(PostgreSQL), one at a time does it (``Storage.lead("deadlines")``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from threadloom.hitl.clock import aware, to_iso
from threadloom.server.auth import SERVER
from threadloom.server.errors import Conflict
from threadloom.server.periodic import log_failure
from threadloom.server.services.approvals import ApprovalService, Pending, pending_items
from threadloom.server.services.runs import RunService
from threadloom.server.storage.rows import thread_version

__all__ = ["ApprovalEvent", "ApprovalFeed"]

log = logging.getLogger("threadloom.server")


@dataclass(frozen=True)
class ApprovalEvent:
    """One change: ``kind``, the request as it is now (or as last seen, when it left),
    the request before the change, whether it is still ``pending``, and the audit
    ``decision`` that made the change."""

    kind: str
    item: Pending
    previous: Pending | None
    pending: bool
    decision: dict[str, Any] | None = None


#: the most thread records a look reads in one query
_READ_BATCH = 500


@dataclass(frozen=True)
class _Seen:
    """A thread as the feed last read it: its record, version, pending items and the
    earliest deadline of the approval requests in its interrupts (None: none has one)."""

    thread: dict[str, Any]
    version: str
    items: list[Pending]
    earliest: datetime | None

    @classmethod
    def of(cls, thread: dict[str, Any]) -> _Seen:
        from threadloom.hitl.deadlines import deadline_at
        from threadloom.hitl.request import requests_in

        deadlines = [
            at for group in (thread.get("interrupts") or {}).values() for intr in group
            for request in (requests_in(intr.get("value")) or ())
            if (at := deadline_at(request)) is not None
        ]
        return cls(thread, thread_version(thread["updated_at"], thread["status"]),
                   pending_items(thread), min(deadlines, default=None))


class ApprovalFeed:
    """Watches pending approvals and tells subscribers (see the module docstring)."""

    def __init__(self, approvals: ApprovalService, runs: RunService, *,
                 interval: float = 1.0, sweep: bool = True, idle_interval: float = 30.0,
                 min_gap: float = 0.05) -> None:
        self.approvals = approvals
        self.runs = runs
        self.interval = interval
        #: with notifications (PostgreSQL), a feed that applies no deadlines looks this
        #: often only as a safety net; every thread change wakes it at once
        self.idle_interval = idle_interval
        #: the least time between two looks (a burst of changes makes one look)
        self.min_gap = min_gap
        self.notified = False
        self.sweep = sweep
        # thread id -> the thread as last read (None: forgotten, see ``_look``)
        self._seen: dict[str, _Seen] | None = None
        self._subscribers: set[asyncio.Queue[ApprovalEvent]] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._attempted: set[tuple[str, str]] = set()
        self._looking = asyncio.Lock()  # one look at a time (the loop's, catch_up's)
        approvals.on_decided.append(self.poke)

    async def start(self) -> None:
        """Start looking (the first look only learns what is pending)."""
        self._wake = asyncio.Event()
        self.notified = self.approvals.ctx.storage.watch_threads(self.poke)
        self._task = asyncio.create_task(self._loop(), name="threadloom-approval-feed")

    async def stop(self) -> None:
        """Stop looking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def poke(self) -> None:
        """Look again now (something was just decided)."""
        if self._wake is not None:
            self._wake.set()

    def subscribe(self) -> asyncio.Queue[ApprovalEvent]:
        """A queue receiving every later event (``unsubscribe`` it when done)."""
        queue: asyncio.Queue[ApprovalEvent] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    async def catch_up(self) -> None:
        """Learn what is pending now if this feed, idle until now, does not know: a
        subscriber calls it before waiting for events, which then are the changes from
        what was pending at that moment."""
        if self._seen is None:
            await self.tick()

    def unsubscribe(self, queue: asyncio.Queue[ApprovalEvent]) -> None:
        """Stop delivering to ``queue``."""
        self._subscribers.discard(queue)

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await self.tick()
            except Exception as exc:  # the database is away: look again later
                log_failure(self.approvals.ctx.storage, "looking at pending approvals", exc)
            # time passing decides deadlines: a sweeping feed looks every ``interval``;
            # otherwise, with notifications, only a thread changing wakes it
            wait = self.idle_interval if self.notified and not self.sweep else self.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            await asyncio.sleep(self.min_gap)
            self._wake.clear()

    async def tick(self) -> list[ApprovalEvent]:
        """Look once: publish and return the events since the last look; apply due
        deadlines when sweeping."""
        async with self._looking:
            return await self._look()

    async def _look(self) -> list[ApprovalEvent]:
        storage = self.approvals.ctx.storage
        if not self.sweep and not self._subscribers:
            self._seen = None  # nobody to tell: forget, until catch_up looks again
            return []
        if self.sweep and not self._subscribers and not await storage.lead("deadlines"):
            return []  # a worker process that neither feeds anyone nor applies deadlines
        versions = await storage.pending_thread_versions()
        before = self._seen or {}
        changed = [tid for tid, version in versions.items()
                   if tid not in before or before[tid].version != version]
        fresh: dict[str, _Seen] = {}
        for start in range(0, len(changed), _READ_BATCH):
            for thread in await storage.pending_threads(None, changed[start:start + _READ_BATCH]):
                fresh[thread["thread_id"]] = _Seen.of(thread)
        seen: dict[str, _Seen] = {}
        for tid in versions:
            if tid in fresh:
                seen[tid] = fresh[tid]
            elif tid in before:
                # changed, and no longer pending when its record was read: as it was until
                # a look finds it gone (a thread moving between busy and interrupted
                # is not taken for answered, then asked again)
                seen[tid] = before[tid]
        events: list[ApprovalEvent] = []
        # the events (and the audit reads naming their reasons) only for someone to get
        heard = bool(self._subscribers) or bool(self.approvals.ctx.config.webhook_url)
        if self._seen is not None and heard:
            for tid, now in fresh.items():
                known = {i.key: i for i in before[tid].items} if tid in before else {}
                for item in now.items:
                    old = known.get(item.key)
                    if old is None:
                        events.append(ApprovalEvent("requested", item, None, True))
                    elif old.fingerprint() != item.fingerprint():
                        kind, decision = await self.approvals.reason_gone(old)
                        kind = "requested" if kind == "withdrawn" else kind
                        events.append(ApprovalEvent(kind, item, old, True, decision))
            for tid, then in before.items():
                if tid not in fresh and tid in seen:
                    continue  # unchanged
                current = {i.key for i in seen[tid].items} if tid in seen else set()
                for old in then.items:
                    if old.key not in current:
                        kind, decision = await self.approvals.reason_gone(old)
                        events.append(ApprovalEvent(kind, old, old, False, decision))
        self._seen = seen
        for event in events:
            for queue in list(self._subscribers):
                queue.put_nowait(event)
        if self.sweep:
            await self._post(events)
            await self._apply_deadlines(seen)
        return events

    async def _post(self, events: list[ApprovalEvent]) -> None:
        """POST the events the config's webhook asks for (``webhooks``), from the one
        process applying the deadlines."""
        config = self.approvals.ctx.config
        wanted = [e for e in events if e.kind in config.webhook_events]
        if not config.webhook_url or not wanted:
            return
        if not await self.approvals.ctx.storage.lead("deadlines"):
            return
        from threadloom.hitl.clock import utcnow

        for event in wanted:
            request = await self.approvals.row(SERVER, event.item)
            await self.approvals.ctx.webhooks.queue(config.webhook_url, {
                "event": f"approval.{event.kind}",
                "key": event.item.key,
                "thread_id": event.item.thread_id,
                "graph_id": event.item.graph_id,
                "pending": event.pending,
                "request": request,
                "decision": event.decision,
                "sent_at": to_iso(utcnow()),
            }, name=f"approval.{event.kind} {event.item.key}")

    async def _apply_deadlines(self, seen: dict[str, _Seen]) -> None:
        from threadloom.hitl.approval_hooks import graph_identity, hooks_of
        from threadloom.hitl.deadlines import due_requests

        if not await self.approvals.ctx.storage.lead("deadlines"):
            return  # another worker process applies them (PostgreSQL: one at a time)
        # (the marks of threads no longer waiting go: a server applies deadlines for
        # months)
        self._attempted = {mark for mark in self._attempted if mark[0] in seen}
        graphs = self.approvals.ctx.graphs
        for thread_id, entry in seen.items():
            if entry.earliest is None:
                continue  # no deadline: nothing to read
            graph_id = (entry.thread.get("metadata") or {}).get("graph_id")
            if graph_id is None or graph_id not in graphs:
                continue
            graph = graphs.get(graph_id)
            hooks = hooks_of(graph)
            if hooks is None:
                continue
            now = hooks.now()
            if aware(now) < entry.earliest:
                continue  # not yet
            interrupts = [
                SimpleNamespace(id=i["id"], value=i.get("value"))
                for group in (entry.thread.get("interrupts") or {}).values() for i in group
            ]
            due = due_requests(interrupts, now, graph_identity(graph))
            if not due:
                continue
            mark = (thread_id, json.dumps(due, sort_keys=True, default=str))
            if mark in self._attempted:
                continue  # tried and failed: the thread shows the error
            metadata = entry.thread.get("metadata") or {}
            body = {
                "assistant_id": metadata.get("assistant_id") or graph_id,
                "command": {"resume": due},
                "multitask_strategy": "reject",
            }
            try:
                await self.runs.create(SERVER, thread_id, body,
                                       internal={"_deadline_sweep": to_iso(now)})
            except Conflict:
                continue  # a run is busy on the thread: look again next time
            except Exception:
                log.exception("applying the deadlines of thread %s failed", thread_id)
            self._attempted.add(mark)
