"""Runs: queue them, follow them, wait for them, cancel them.

A run is queued in the storage (``create_run`` applies the thread's
``multitask_strategy`` atomically) and executed by a worker; the request that made it
can follow its events (``stream``), wait for its output (``wait``), or return at once.
Stateless runs (no thread id) get a temporary thread, deleted when they end unless
``on_completion="keep"``.

Answers to people's questions are checked here before anything is queued: a resume
when nothing is pending on the thread, or naming interrupts that are no longer
pending, is a 409 carrying the earlier decision from the audit log - the second answer
to an approval never reaches the graph.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from threadloom.server.auth import AuthUser
from threadloom.server.context import ServerContext, check_uuid, visible
from threadloom.server.errors import Conflict, NotFound, Unprocessable
from threadloom.server.executor import RESULT_EVENT, run_config
from threadloom.server.graphs import output_interrupts
from threadloom.server.records import new_id, now_iso
from threadloom.server.services.assistants import AssistantService
from threadloom.server.services.threads import ThreadService
from threadloom.server.storage.base import RUN_ACTIVE, CancelAction, StreamEvent

__all__ = ["THREAD_POLL_SECONDS", "RunService", "public_run"]

#: how often a thread's joined stream looks for the thread's next run
THREAD_POLL_SECONDS = 0.2

_KWARGS = (
    "input", "command", "config", "context", "stream_mode", "interrupt_before",
    "interrupt_after", "webhook", "feedback_keys", "checkpoint", "checkpoint_id",
    "durability", "on_disconnect",
)

_Created = asyncio.Queue[tuple[str, AsyncIterator[StreamEvent]]]
"""A joined thread stream's queue: each run created on the thread, with its events."""


def _is_uuid(value: str) -> bool:
    try:
        check_uuid(value, "thread")
    except Unprocessable:
        return False
    return True


#: the run options a run's ``kwargs`` shows when the request left them out, as the
#: reference server echoes them (``durability`` and ``checkpoint_during`` are the
#: graph's defaults, which a run without them gets)
_SHOWN_DEFAULTS: dict[str, Any] = {
    "command": None, "config": {}, "context": {}, "interrupt_before": None,
    "interrupt_after": None, "webhook": None, "feedback_keys": None,
    "checkpoint_during": True, "durability": "async",
}


def public_run(run: dict[str, Any]) -> dict[str, Any]:
    """The run as clients see it: without the private keys kept for the worker, with
    every run option in ``kwargs`` (those not sent at their defaults), ``config`` as the
    graph gets it (``run_config``: the ids and the caller added; the assistant's own
    config is merged in when the run starts)."""
    kwargs = {k: v for k, v in (run.get("kwargs") or {}).items() if not k.startswith("_")}
    graph_id = (run.get("metadata") or {}).get("graph_id")
    if graph_id is not None:
        config = run_config({"assistant_id": run["assistant_id"], "graph_id": graph_id},
                            run)
        kwargs["config"] = {k: v for k, v in config.items() if k != "callbacks"}
    for key, value in _SHOWN_DEFAULTS.items():
        if kwargs.get(key) is None:
            kwargs[key] = dict(value) if isinstance(value, dict) else value
    out = {k: v for k, v in run.items() if k != "attempt"}
    out["kwargs"] = kwargs
    out.setdefault("langsmith_session_name", None)
    return out


class RunService:
    """Create, follow, list and cancel runs."""

    def __init__(self, ctx: ServerContext, threads: ThreadService,
                 assistants: AssistantService) -> None:
        self.ctx = ctx
        self.threads = threads
        self.assistants = assistants
        # the queues of this process's joined thread streams, by thread id
        self._followers: dict[str, set[_Created]] = {}

    # -- creating ----------------------------------------------------------------------

    async def create(
        self, user: AuthUser, thread_id: str | None, body: dict[str, Any], *,
        listen: bool = False, internal: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], AsyncIterator[StreamEvent] | None]:
        """Queue a run on ``thread_id`` (None: a temporary thread): the run record and,
        with ``listen``, its events (subscribed before anything else can happen).
        ``internal``: the server's own ``_``-prefixed run options (never a client's),
        e.g. ``_deadline_sweep``."""
        storage = self.ctx.storage
        assistant_id = self.assistants.key(body["assistant_id"])
        thread: dict[str, Any] | None = None
        if thread_id is not None and _is_uuid(thread_id):  # both in one read
            thread, assistant = await storage.get_thread_and_assistant(
                thread_id, assistant_id, values=False)  # (a run reads its state itself)
        else:
            assistant = await storage.get_assistant(assistant_id)
        assistant = self.assistants.found(assistant_id, assistant)
        temporary = thread_id is None
        if thread_id is None:
            thread = await self.threads.create(user, {"metadata": {}})
            thread_id = thread["thread_id"]
        else:
            check_uuid(thread_id, "thread")
            if thread is None:
                if body.get("if_not_exists") != "create":
                    raise NotFound(
                        f"Thread {thread_id} not found: create it first, or send "
                        "if_not_exists='create'."
                    )
                thread = await self.threads.create(user, {"thread_id": thread_id})
        run_id = new_id()
        metadata = dict(body.get("metadata") or {})
        value = {
            "thread_id": thread_id, "assistant_id": assistant["assistant_id"], "run_id": run_id,
            "status": "pending", "metadata": metadata, "kwargs": dict(body),
            "multitask_strategy": body.get("multitask_strategy"), "prevent_insert_if_inflight":
            True,
        }
        filt = await self.ctx.authorize(user, "threads", "create_run", value)
        visible(thread, filt, f"Thread {thread_id}")
        graph_id = assistant["graph_id"]
        graph = self.ctx.graphs.get(graph_id)
        command = body.get("command") or {}
        if command.get("resume") is not None:
            await self._check_resume(thread, graph, command["resume"])
        kwargs = {k: body[k] for k in _KWARGS if body.get(k) is not None}
        kwargs["stream_mode"] = body.get("stream_mode") or ["values"]
        kwargs["subgraphs"] = bool(body.get("stream_subgraphs"))
        kwargs["resumable"] = bool(body.get("stream_resumable"))
        kwargs["temporary"] = temporary and body.get("on_completion", "delete") == "delete"
        kwargs["_user"] = user.to_dict()
        kwargs.update({k: v for k, v in (internal or {}).items() if k.startswith("_")})
        now = now_iso()
        tags = {"graph_id": graph_id, "assistant_id": assistant["assistant_id"]}
        seen = thread.get("metadata") or {}
        # (a thread's later runs mostly name the same assistant: no write then;
        # create_run bumps the thread's updated_at anyway); else written with the run
        retag = (seen, tags) if any(seen.get(k) != v for k, v in tags.items()) else None
        record = {
            "run_id": run_id,
            "thread_id": thread_id,
            "assistant_id": assistant["assistant_id"],
            "created_at": now,
            "updated_at": now,
            "metadata": {
                **(assistant.get("metadata") or {}),
                **metadata,
                "graph_id": graph_id,
                "assistant_id": assistant["assistant_id"],
            },
            "kwargs": kwargs,
            "run_at": time.time() + float(body.get("after_seconds") or 0),
        }
        strategy = body.get("multitask_strategy") or "enqueue"
        run, to_cancel = await storage.create_run(record, multitask_strategy=strategy,
                                                  thread_metadata=retag)
        events = storage.subscribe(run_id, after=None) if listen else None
        for follower in self._followers.get(thread_id, ()):  # joined thread streams
            follower.put_nowait((run_id, storage.subscribe(run_id, after=None)))
        if to_cancel:
            action: CancelAction = "rollback" if strategy == "rollback" else "interrupt"
            await self.cancel_runs([r["run_id"] for r in to_cancel], action)
        run.pop("run_at", None)
        return run, events

    async def _check_resume(self, thread: Mapping[str, Any], graph: Any, resume: Any) -> None:
        """409 for an answer to nothing pending (a second answer, an unknown id)."""
        from threadloom.engine.task import is_resume_map
        from threadloom.hitl.request import requests_in

        thread_id = str(thread["thread_id"])
        if thread.get("interrupts") and not (isinstance(resume, Mapping)
                                             and is_resume_map(resume)):
            # an answer not naming interrupts, and the thread's record (stored with the
            # state after every run and state change) holds some pending: no need to
            # read the state (the check below would find them too)
            return
        if await self.ctx.storage.list_active_runs(thread_id):
            return  # queued behind a run: what is pending is known only when it starts

        snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        pending = list(snapshot.interrupts)
        if pending and not (isinstance(resume, Mapping) and is_resume_map(resume)):
            return
        known = {i.id for i in pending}
        for intr in pending:
            known.update(r.id for r in requests_in(intr.value) or ())
        if pending and all(k in known for k in resume):
            return
        keyed = isinstance(resume, Mapping) and (is_resume_map(resume) or "type" not in resume)
        named = set(resume) if keyed else set()
        decision = await self._earlier_decision(thread_id, named)
        detail = (
            f"Nothing on thread {thread_id} is waiting for this answer"
            + (f" (pending now: {sorted(i.id for i in pending)})" if pending else "")
            + ": it was already answered, or never asked."
        )
        if decision is not None:
            detail += (
                f" Request {decision.get('request_id')!r} was already decided: "
                f"{decision.get('decision')!r} by {(decision.get('who') or {}).get('id')} at "
                f"{decision.get('at')}."
            )
        error = Conflict(detail)
        error.extra = {"decision": decision}
        raise error

    async def _earlier_decision(self, thread_id: str, named: set[str]) -> dict[str, Any] | None:
        saver = self.ctx.storage.checkpointer
        if not hasattr(saver, "alist_audit"):
            return None
        records = [r for r in await saver.alist_audit(thread_id) if r.get("event") == "decision"]
        for record in reversed(records):
            if not named or record.get("request_id") in named or record.get(
                "interrupt_id"
            ) in named:
                return {k: record.get(k) for k in (
                    "request_id", "interrupt_id", "action", "decision", "status", "who", "at"
                )}
        return None

    def listen(self, run_id: str, *, after: str | None = None) -> AsyncIterator[StreamEvent]:
        """The run's events from now on (see ``Storage.subscribe``)."""
        return self.ctx.storage.subscribe(run_id, after=after)

    def thread_followers(self) -> int:
        """How many joined thread streams this process is serving (``/metrics``)."""
        return sum(len(queues) for queues in self._followers.values())

    async def follow_thread(self, thread_id: str) -> AsyncIterator[StreamEvent]:
        """The events of every run on the thread from now on, one run after the other
        (each starts with its ``metadata`` event), until the thread is deleted; the
        caller checked the thread is readable.

        Runs created through this process are subscribed to as they are created (so
        none of their events is missed); runs another process created are found by
        looking at the thread's active runs every ``THREAD_POLL_SECONDS``."""
        storage = self.ctx.storage
        created: _Created = asyncio.Queue()
        self._followers.setdefault(thread_id, set()).add(created)
        followed: set[str] = set()
        try:
            while True:
                try:
                    run_id, events = await asyncio.wait_for(created.get(),
                                                            THREAD_POLL_SECONDS)
                except TimeoutError:
                    runs = [r for r in await storage.list_active_runs(thread_id)
                            if r["run_id"] not in followed]
                    if not runs:
                        if await storage.get_thread(thread_id) is None:
                            return
                        continue
                    run_id = runs[0]["run_id"]  # a thread's runs run in the order queued
                    events = storage.subscribe(run_id, after=None)
                if run_id in followed:
                    continue
                followed.add(run_id)
                async for event in events:
                    yield event
        finally:
            followers = self._followers.get(thread_id, set())
            followers.discard(created)
            if not followers:
                self._followers.pop(thread_id, None)

    async def output(self, run: dict[str, Any]) -> Any:
        """A finished run's output: the thread's values (+ ``__interrupt__``) or
        ``{"__error__": ...}``."""
        if run["status"] == "error":
            thread = await self.ctx.storage.get_thread(run["thread_id"])
            return {"__error__": (thread or {}).get("error") or {"error": "Error",
                                                                  "message": "run failed"}}
        thread = await self.ctx.storage.get_thread(run["thread_id"])
        if thread is None:
            return None
        values = thread.get("values")
        interrupts = [i for group in (thread.get("interrupts") or {}).values() for i in group]
        if interrupts:
            return {**(values if isinstance(values, dict) else {}),
                    "__interrupt__": output_interrupts(interrupts)}
        return values

    @staticmethod
    async def collect_result(events: AsyncIterator[StreamEvent]) -> Any:
        """Drain a subscription until its end; the run's ``__result__``."""
        from threadloom.server import serde

        result = None
        async for event in events:
            if event.event == RESULT_EVENT:
                result = serde.loads(event.data)
        return result

    # -- reading -----------------------------------------------------------------------

    async def get(self, user: AuthUser, thread_id: str, run_id: str) -> dict[str, Any]:
        await self.threads.readable(user, thread_id, values=False)
        check_uuid(run_id, "run")
        run = await self.ctx.storage.get_run(run_id, thread_id)
        if run is None:
            raise NotFound(f"Run {run_id} not found on thread {thread_id}.")
        return run

    async def list(self, user: AuthUser, thread_id: str, *, limit: int, offset: int,
                   status: str | None) -> list[dict[str, Any]]:
        await self.threads.readable(user, thread_id, values=False)
        return await self.ctx.storage.list_runs(thread_id, limit=limit, offset=offset,
                                                status=status)

    async def delete(self, user: AuthUser, thread_id: str, run_id: str) -> None:
        await self.threads.readable(user, thread_id, "delete", values=False)
        run = await self.get(user, thread_id, run_id)
        if run["status"] in RUN_ACTIVE:
            await self.cancel_runs([run_id], "interrupt")
        await self.ctx.storage.delete_run(run_id)

    async def join(self, user: AuthUser, thread_id: str, run_id: str) -> Any:
        run = await self.get(user, thread_id, run_id)
        done = await self.ctx.storage.wait_run(run["run_id"], None)
        if done is None:
            return None
        return await self.output(done)

    # -- cancelling --------------------------------------------------------------------

    async def cancel(self, user: AuthUser, thread_id: str, run_id: str, *, wait: bool,
                     action: CancelAction) -> None:
        await self.threads.readable(user, thread_id, "update", values=False)
        run = await self.get(user, thread_id, run_id)
        if run["status"] not in RUN_ACTIVE:
            raise NotFound(f"Run {run_id} is not pending or running (it is {run['status']}).")
        await self.cancel_runs([run_id], action)
        if wait:
            await self.ctx.storage.wait_run(run_id, None)

    async def cancel_runs(self, run_ids: Sequence[str], action: CancelAction) -> None:
        """Cancel runs; pending ones end at once (and their thread is brought up to date)."""
        found = await self.ctx.storage.request_cancel(run_ids, action)
        for run in found:
            if run["status"] != "pending":
                continue
            thread = await self.ctx.storage.get_thread(run["thread_id"])
            if thread is None:
                continue
            if await self.ctx.storage.list_active_runs(run["thread_id"]):
                continue
            await self.threads.refresh(run["thread_id"], self.threads.graph_for(thread))

    async def cancel_many(self, user: AuthUser, body: dict[str, Any],
                          action: CancelAction) -> None:
        thread_id = body.get("thread_id")
        status = body.get("status")
        if body.get("run_ids"):
            if thread_id is None:
                raise NotFound("cancel by run_ids needs the thread_id")
            ids = list(body["run_ids"])
            for run_id in ids:
                await self.get(user, thread_id, run_id)
        else:
            if thread_id is not None:
                await self.threads.readable(user, thread_id, "update", values=False)
            active = await self.ctx.storage.list_active_runs(thread_id)
            ids = [
                r["run_id"] for r in active
                if status in (None, "all") or r["status"] == status
            ]
        if ids:
            await self.cancel_runs(ids, action)
