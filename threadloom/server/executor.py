"""Executing one claimed run: the graph run, its stream events, its final status.

``execute_run`` is what a worker does with a run it claimed: it builds the run's
config (the assistant's config under the run's; the thread, run and assistant ids;
the caller's identity as the approvals' reviewer - never the client's config), turns
``input``/``command`` into the graph's input, runs ``graph.astream`` with the stream
modes asked for, publishes every chunk as a server-sent event, and at the end stores
the thread's new values/status/interrupts *before* closing the stream (a client that
sees the stream end and asks for the run finds its final status).

Event names follow the API: ``metadata`` first, then one event per chunk named after
its mode (``messages-tuple`` chunks are named ``messages``; with ``stream_subgraphs``
a subgraph's chunk is named ``mode|<ns>``), ``error`` on failure. An internal
``__result__`` event (never sent to clients) carries the run's output for ``wait``.

A run taken over from a worker that died (``attempt`` > 1) continues from its last
checkpoint when the first attempt got as far as writing one, else starts as asked.

A worker may also lose a run while alive: its event loop blocked past the lease (a node
calling ``time.sleep`` or a blocking client), the database unreachable for as long. The
run is then taken over while the first worker still holds the thread's run lock - the
second one's run would fail at once (``CheckpointConflictError``), so it is put back
in the queue for a moment (``Storage.release_run``) and taken again when the first
lets go, up to ``TAKEOVER_ATTEMPTS`` claims. The first worker lets go when it learns
it lost its lease (``Worker`` cancels the run without recording anything), and if it
reaches the run's end first, that end is not written (``end_run`` with its worker id):
whoever holds the run records it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from threadloom.constants import CONFIG_KEY_RUN_ENDED, PUSH
from threadloom.errors import CheckpointConflictError
from threadloom.graph.thread_state import RunHead, run_head
from threadloom.server import serde
from threadloom.server.auth import AuthUser
from threadloom.server.graphs import checkpoint_ref, interrupt_dicts, output_interrupts
from threadloom.server.serde import jsonable
from threadloom.server.services.threads import (
    ThreadService,
    reviewer_config,
    strip_client_identity,
    thread_status,
)
from threadloom.server.storage.base import CLAIMED_ASSISTANT
from threadloom.server.webhooks import run_webhook

__all__ = ["RESULT_EVENT", "TAKEOVER_ATTEMPTS", "RunHold", "build_input", "execute_run",
           "run_config"]

RESULT_EVENT = "__result__"

log = logging.getLogger("threadloom.server")

#: the claims of a run after which a thread another process still holds ends it in error
TAKEOVER_ATTEMPTS = 10


@dataclass
class RunHold:
    """A worker's hold on a run it executes, shared by the worker and ``execute_run``.

    ``worker_id``: the worker holding it (its end is written only while it does).
    ``action``: the cancel asked for (``interrupt`` / ``rollback``), set by whoever
    cancels the task executing the run; ``lost``: set instead when the worker lost the
    run's lease (the task is cancelled and nothing is recorded). ``ending``: set by
    ``execute_run`` once the run's end is being written - the task is then no longer
    cancelled (a cancel then would leave the run running until its lease ran out)."""

    worker_id: str | None = None
    action: str | None = None
    lost: bool = False
    ending: bool = False

_GRAPH_MODES = {
    "values": "values",
    "updates": "updates",
    "custom": "custom",
    "debug": "debug",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "messages-tuple": "messages",
    "messages": "messages",
}


def run_config(assistant: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """The graph config of a run: assistant config under the run's, plus the ids and
    the caller's identity (which no client-sent key can override)."""
    kwargs = run["kwargs"]
    base = dict(assistant.get("config") or {})
    given = dict(kwargs.get("config") or {})
    configurable = {
        **(base.get("configurable") or {}),
        **strip_client_identity(dict(given.get("configurable") or {})),
    }
    user = AuthUser.from_dict(kwargs.get("_user"))
    configurable.update(reviewer_config(user))
    configurable.update(
        thread_id=run["thread_id"],
        run_id=run["run_id"],
        assistant_id=assistant["assistant_id"],
        graph_id=assistant["graph_id"],
    )
    checkpoint = kwargs.get("checkpoint") or {}
    if kwargs.get("checkpoint_id"):
        checkpoint = {**checkpoint, "checkpoint_id": kwargs["checkpoint_id"]}
    for key in ("checkpoint_id", "checkpoint_ns", "checkpoint_map"):
        if checkpoint.get(key):
            configurable[key] = checkpoint[key]
    config: dict[str, Any] = {**base, **given, "configurable": configurable}
    config["metadata"] = {
        **(base.get("metadata") or {}),
        **(given.get("metadata") or {}),
        **(run.get("metadata") or {}),
        "run_id": run["run_id"],
        "thread_id": run["thread_id"],
        "graph_id": assistant["graph_id"],
        "assistant_id": assistant["assistant_id"],
        "run_attempt": run.get("attempt", 1),
    }
    tags = list(base.get("tags") or []) + list(given.get("tags") or [])
    if tags:
        config["tags"] = list(dict.fromkeys(tags))
    return config


def _goto(value: Any) -> Any:
    from threadloom.types import Send

    if isinstance(value, Mapping) and "node" in value:
        return Send(value["node"], value.get("input"))
    if isinstance(value, list):
        return [_goto(v) for v in value]
    return value


def build_input(kwargs: Mapping[str, Any]) -> Any:
    """The graph input: a ``Command`` for ``command``, else ``input`` (None resumes a
    statically interrupted thread)."""
    command = kwargs.get("command")
    if command:
        from threadloom.types import Command

        args: dict[str, Any] = {}
        if command.get("resume") is not None:
            args["resume"] = command["resume"]
        if command.get("update") is not None:
            update = command["update"]
            args["update"] = [tuple(u) for u in update] if isinstance(update, list) else update
        if command.get("goto") is not None:
            args["goto"] = _goto(command["goto"])
        return Command(**args)
    return kwargs.get("input")


def _event_name(mode: str, ns: tuple[str, ...]) -> str:
    name = "messages" if mode == "messages-tuple" else mode
    return "|".join((name, *ns)) if ns else name


class _LegacyMessages:
    """The legacy ``messages`` mode: metadata once per message, then the accumulated
    message per token (``messages/partial``), whole messages as ``messages/complete``."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def events(self, chunk: Any, metadata: Any) -> list[tuple[str, Any]]:
        from langchain_core.messages import BaseMessageChunk, message_chunk_to_message

        msg_id = getattr(chunk, "id", None) or ""
        out: list[tuple[str, Any]] = []
        if msg_id not in self.seen:
            out.append(("messages/metadata", {msg_id: {"metadata": metadata}}))
            self.seen[msg_id] = None
        if isinstance(chunk, BaseMessageChunk):
            prev = self.seen[msg_id]
            self.seen[msg_id] = chunk if prev is None else prev + chunk
            # the message so far, as a message (``type: "ai"``), not a chunk
            out.append(("messages/partial", [message_chunk_to_message(self.seen[msg_id])]))
        else:
            out.append(("messages/complete", [chunk]))
        return out


async def execute_run(threads: ThreadService, run: dict[str, Any], hold: RunHold) -> str:
    """Run ``run`` to its end and record it; returns the final status (``released``:
    put back in the queue, its thread still held by another process; ``lost``: another
    worker holds the run now, nothing was recorded).

    ``hold.action`` is set by whoever cancels the task running this coroutine, so the
    cancellation is recorded as asked; a task cancelled without it (the worker stops,
    or lost the run) records nothing.
    """
    ctx = threads.ctx
    storage = ctx.storage
    run_id = run["run_id"]
    kwargs = run["kwargs"]
    keep = bool(kwargs.get("resumable"))

    outbox = _Outbox(storage, run_id, keep, streamed=bool(kwargs.get("_streamed")))

    async def publish(event: str, data: Any) -> None:
        await outbox.put(event, serde.dumps(data))

    status = "success"
    error: dict[str, Any] | None = None
    graph = None
    ended: list[Any] = []  # the run's loop, when it ended paused or done
    try:
        await publish("metadata", {"run_id": run_id, "attempt": run.get("attempt", 1)})
        if CLAIMED_ASSISTANT in run:  # read with the claim
            assistant = run.pop(CLAIMED_ASSISTANT)
        else:
            assistant = await storage.get_assistant(run["assistant_id"])
        if assistant is None:
            raise LookupError(f"Assistant {run['assistant_id']} was deleted.")
        graph = ctx.graphs.get(assistant["graph_id"])
        config = run_config(assistant, run)
        modes = kwargs.get("stream_mode") or ["values"]
        if isinstance(modes, str):
            modes = [modes]
        context = {**(assistant.get("context") or {}), **(kwargs.get("context") or {})}
        options = {
            "context": context or None,
            "interrupt_before": kwargs.get("interrupt_before"),
            "interrupt_after": kwargs.get("interrupt_after"),
        }
        if kwargs.get("durability"):
            options["durability"] = kwargs["durability"]
        graph_input = build_input(kwargs)
        if run.get("attempt", 1) > 1 and await _started(graph, run):
            # a worker died running it: go on from its last checkpoint, not from scratch
            graph_input = None
            for key in ("checkpoint_id", "checkpoint_map"):
                config["configurable"].pop(key, None)
        if kwargs.get("_deadline_sweep"):
            _sweeping(kwargs["_deadline_sweep"])
        config["configurable"][CONFIG_KEY_RUN_ENDED] = ended.append
        await _stream(graph, graph_input, config, modes, options,
                      bool(kwargs.get("subgraphs")), publish)
    except asyncio.CancelledError:
        action = hold.action
        if action is None:  # the worker stops or lost the run: the lease hands it on
            raise
        status = "interrupted"
        if action == "rollback":
            await outbox.flush()
            await _rollback(threads, run, graph)
            await publish(RESULT_EVENT, None)
            await outbox.flush()
            await storage.close_stream(run_id)
            return "rollback"
    except CheckpointConflictError as exc:
        if _retrying(run, hold):
            # another process holds the thread: a worker that lost the run's lease and
            # has not noticed yet (back to the queue, taken again once it lets go) - or,
            # the run lock lost mid-run (RunLockLostError), the worker that took the run
            # over from this one (then nothing more is this worker's to write)
            await outbox.flush()
            return await _release(storage, run, hold)
        status = "error"
        error = {"error": type(exc).__name__, "message": str(exc)}
        await publish("error", error)
    except Exception as exc:  # the graph failed: the run ends in error, the server lives on
        if storage.unavailable(exc) and _retrying(run, hold):
            return await _release_after_outage(storage, outbox, run, hold, exc)
        status = "error"
        error = {"error": type(exc).__name__, "message": str(exc)}
        await publish("error", error)
    # the run's events go before its end; those not on their way yet go with it
    hold.ending = True
    try:
        unsent = await outbox.take()
        head = run_head(graph, ended[-1]) \
            if graph is not None and ended and status == "success" else None
        if head is not None and len(head.interrupts) > 1:
            head = _in_run_order(head, ended[-1].interrupts)
        _, finished = await _finish(threads, run, graph, status, error, unsent, head,
                                    cancelled=status == "interrupted",
                                    worker_id=hold.worker_id, webhook=kwargs.get("webhook"))
    except Exception as exc:
        if not (storage.unavailable(exc) and _retrying(run, hold)):
            raise
        # its end not recorded: the next attempt finds the graph where this one left
        # it (paused or done) and records that at once
        return await _release_after_outage(storage, outbox, run, hold, exc)
    if kwargs.get("webhook") and finished is not None:
        threads.ctx.webhooks.wake()  # (its delivery kept with the run's end)
    return status


def _retrying(run: Mapping[str, Any], hold: RunHold) -> bool:
    """Whether a run that cannot go on here for now (its thread held by another
    process, the database out of reach) may go back to the queue: a worker's run,
    claimed fewer than ``TAKEOVER_ATTEMPTS`` times."""
    return hold.worker_id is not None and run.get("attempt", 1) < TAKEOVER_ATTEMPTS


async def _release(storage: Any, run: Mapping[str, Any], hold: RunHold) -> str:
    """Put the run back in the queue, to be claimed again after a delay doubling with
    each attempt (0.25 s, 0.5 s, ... 5 s); ``released``, or ``lost`` when this worker no
    longer holds it."""
    assert hold.worker_id is not None
    delay = min(5.0, 0.25 * 2 ** (run.get("attempt", 1) - 1))
    if await storage.release_run(run["run_id"], hold.worker_id, delay):
        return "released"
    return "lost"


async def _release_after_outage(storage: Any, outbox: _Outbox, run: Mapping[str, Any],
                                hold: RunHold, error: BaseException) -> str:
    """``_release`` a run that failed because the server's database went away (its
    connection lost, the database restarting): it runs again from its last checkpoint,
    as when its worker dies. If the database is still out of reach, this raises and the
    run's lease, no longer renewed, runs out instead."""
    log.warning("run %s (attempt %s): the database went away (%s: %s); back in the "
                "queue, to go on from its last checkpoint", run["run_id"],
                run.get("attempt", 1), type(error).__name__, str(error).strip())
    with contextlib.suppress(Exception):  # its events: those not written are sent again
        await outbox.flush()
    return await _release(storage, run, hold)


class _Outbox:
    """A run's events on their way to its stream, in order.

    On a storage shared by processes (PostgreSQL) each write is a round trip to the
    database: there the run does not wait for its events to be written - ``put`` hands
    them to a writer task, which waits ``delay`` seconds for more to come, then appends
    what accumulated (and, while that write was on the wire, the next batch) in one
    statement each (``publish_many``: one notification per batch). ``flush`` waits
    until all are written and raises the error of a write that failed; ``take`` (at the
    run's end) does so for a batch already being written, and returns the events whose
    writer was still waiting, for the run's end to carry in its own transaction: a run
    ending within ``delay`` writes its events, result and end in one statement.
    Elsewhere ``put`` writes the event at once.

    ``streamed``: the run was asked for by a client streaming its events (``runs.stream``,
    ``delay``); else (``runs.wait``, ``runs.create``: a client waits for the output, and
    whoever joins the stream meanwhile sees its events in batches) the first event of a
    batch waits ``quiet_delay``, so that most short runs write their events with their
    end - one statement, one notification, instead of two each."""

    #: how long the first event of a batch waits for others (and for the run's end)
    delay = 0.05
    #: the same for a run no client asked to stream
    quiet_delay = 0.25

    def __init__(self, storage: Any, run_id: str, keep: bool, *, streamed: bool = True
                 ) -> None:
        self.storage = storage
        self.run_id = run_id
        self.keep = keep
        self.streamed = streamed
        self.background = bool(getattr(storage, "shared", False))
        self.pending: list[tuple[str, bytes]] = []
        self.writer: asyncio.Task[None] | None = None
        self.writing = False  # the writer is past its wait (a batch is its own now)
        self.error: BaseException | None = None

    async def put(self, event: str, data: bytes) -> None:
        if not self.background:
            await self.storage.publish(self.run_id, event, data, keep=self.keep)
            return
        if self.error is not None:
            raise self.error
        self.pending.append((event, data))
        if self.writer is None or self.writer.done():
            self.writing = False
            self.writer = asyncio.create_task(self._write(), name=f"events-{self.run_id}")

    async def _write(self) -> None:
        await asyncio.sleep(self.delay if self.streamed else self.quiet_delay)
        self.writing = True
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                await self.storage.publish_many(self.run_id, batch, keep=self.keep)
            except Exception as exc:  # the run learns it at its next put or flush
                self.error = exc
                self.pending.clear()
                return

    async def take(self) -> list[tuple[str, bytes]]:
        """``flush``, except for the events whose writer is still waiting: those are
        not written but returned (in order), for the caller to write."""
        writer = self.writer
        if writer is not None and not writer.done() and not self.writing:
            # still in its wait: it has taken nothing, and ends there (not awaited: a
            # cancellation of the run itself must not be taken for the writer's)
            writer.cancel()
            self.writer = None
            unsent, self.pending = self.pending, []
            await self.flush()  # (an earlier batch's error)
            return unsent
        await self.flush()
        return []

    async def flush(self) -> None:
        if self.writer is not None:
            # shielded: a cancellation of the run (arriving while it waits here) must
            # not stop the writing of what it already published
            await asyncio.shield(self.writer)
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def _sweeping(at: str) -> None:
    """This run is the server applying approval deadlines as of ``at``: only such a run
    may give deadline decisions (``threadloom.hitl.deadlines``). The flag lives in the
    context of the task executing the run, so it ends with the run."""
    from threadloom.hitl.approval_hooks import sweeping
    from threadloom.hitl.clock import from_iso

    sweeping(from_iso(at))


async def _stream(graph: Any, graph_input: Any, config: dict[str, Any], modes: list[str],
                  options: dict[str, Any], subgraphs: bool, publish: Any) -> None:
    """Run the graph, publishing the events of ``modes``. With ``events`` among them the
    graph runs under ``astream_events`` (v2), whose root ``on_chain_stream`` events
    carry the chunks of the other modes."""
    graph_modes = list(dict.fromkeys(_GRAPH_MODES[m] for m in modes if m in _GRAPH_MODES))
    chunks = _Chunks(modes, subgraphs, publish)
    if "events" not in modes:
        async for item in graph.astream(
            graph_input, config, stream_mode=graph_modes, subgraphs=subgraphs, **options
        ):
            await chunks.publish(item)
        return
    if graph_modes:
        options = {**options, "stream_mode": graph_modes, "subgraphs": subgraphs}
    async for event in graph.astream_events(graph_input, config, version="v2", **options):
        await publish("events", event)
        if graph_modes and event.get("event") == "on_chain_stream" and not event.get(
            "parent_ids"
        ):
            await chunks.publish(event["data"]["chunk"])


class _Chunks:
    """Publishes what ``astream(stream_mode=[...])`` yields as the run's events."""

    def __init__(self, modes: list[str], subgraphs: bool, publish: Any) -> None:
        self.subgraphs = subgraphs
        self.publish_event = publish
        self.legacy = _LegacyMessages() if "messages" in modes else None
        self.tuple_mode = "messages-tuple" in modes

    async def publish(self, item: Any) -> None:
        if self.subgraphs:
            ns, mode, chunk = item
        else:
            (mode, chunk), ns = item, ()
        if mode == "messages":
            message, metadata = chunk
            if self.tuple_mode:
                await self.publish_event(_event_name("messages", ns), [message, metadata])
            if self.legacy is not None:
                for name, data in self.legacy.events(message, metadata):
                    await self.publish_event(_event_name(name, ns), data)
            return
        if mode == "debug" and isinstance(chunk, dict) and chunk.get("type") == "checkpoint":
            chunk = _with_checkpoint_refs(chunk)
        await self.publish_event(_event_name(mode, ns), chunk)


def _with_checkpoint_refs(chunk: dict[str, Any]) -> dict[str, Any]:
    """A ``debug`` checkpoint event with the ``checkpoint`` and ``parent_checkpoint``
    references the API adds to its payload (from ``config`` / ``parent_config``)."""
    payload = dict(chunk.get("payload") or {})
    payload["checkpoint"] = checkpoint_ref(payload.get("config"))
    payload["parent_checkpoint"] = checkpoint_ref(payload.get("parent_config"))
    return {**chunk, "payload": payload}


async def _started(graph: Any, run: dict[str, Any]) -> bool:
    """Whether an earlier attempt of ``run`` wrote checkpoints (the thread's head is
    one of this run's)."""
    snapshot = await graph.aget_state(
        {"configurable": {"thread_id": run["thread_id"], "checkpoint_ns": ""}}
    )
    return bool((snapshot.metadata or {}).get("run_id") == run["run_id"])


def _in_run_order(head: RunHead, raised: list[Any]) -> RunHead:
    """``head`` with its interrupts (the run's output) and the thread's pending questions
    in the order the run raised them (its output's, as LangGraph's and the reference's
    ``__interrupt__`` list them), not ``get_state``'s (Send packets, then nodes as
    added)."""
    rank = {i.id: n for n, i in enumerate(raised)}
    last = len(rank)
    interrupts = tuple(sorted(head.interrupts, key=lambda i: rank.get(i.id, last)))
    asking = dict(sorted(head.asking.items(), key=lambda item: min(
        (rank.get(i.id, last) for i in item[1]), default=last)))
    return head._replace(interrupts=interrupts, asking=asking)


#: the thread's ``error`` after a run cancelled with ``action=interrupt``
_CANCELLED = {"error": "UserInterrupt",
              "message": "interrupt requested via POST /threads/{thread_id}/runs/{run_id}/cancel"}


async def _finish(threads: ThreadService, run: dict[str, Any], graph: Any, status: str,
                  error: dict[str, Any] | None, unsent: list[tuple[str, bytes]],
                  head: RunHead | None = None, *, cancelled: bool = False,
                  worker_id: str | None = None,
                  webhook: str | None = None) -> tuple[Any, dict[str, Any] | None]:
    """Store the thread's new state and the run's status, publish the run's ``unsent``
    events and its output and close its stream; the output and the run's record.

    ``head``: the thread's head as the run left it (``run_head``); without it (a run
    that failed or was cancelled, ...) the state is read back from the saver.
    ``cancelled``: the run was stopped by a cancel (``action=interrupt``): the thread's
    ``error`` says so, as the reference's does (its status is read from its state).
    ``worker_id``: the worker holding the run; nothing is written if it no longer does
    (``finished`` is then None). ``webhook``: the run's webhook URL - its delivery is
    kept with the run's end, in the same transaction."""
    storage = threads.ctx.storage
    thread_fields: dict[str, Any] = {}
    output: Any = None
    if graph is not None:
        if head is None:
            snapshot = await graph.aget_state(
                {"configurable": {"thread_id": run["thread_id"], "checkpoint_ns": ""}}
            )
            head = RunHead.of(snapshot)
            if len(head.interrupts) > 1:  # in the order a run plans the tasks asking
                planned = sorted(snapshot.tasks, key=lambda t: (t.path[:1] != (PUSH,), t.name))
                head = _in_run_order(head, [i for t in planned for i in t.interrupts])
        values = jsonable(head.values) if head.saved else None
        thread_fields = {
            "values": values,
            "interrupts": {tid: interrupt_dicts(asked) for tid, asked in head.asking.items()},
            "status": thread_status(head, failed=error is not None),
            "error": _CANCELLED if cancelled and error is None else error,
            "state_updated": True,
        }
        output = values
        if head.interrupts:
            output = {**(values if isinstance(values, dict) else {}),
                      "__interrupt__": output_interrupts(interrupt_dicts(head.interrupts))}
    elif error is not None:
        thread_fields = {"status": "error", "error": error}
    if error is not None:
        output = {"__error__": error}
    # the run's output for ``wait`` and the stream's end go with its final status (in
    # one transaction where the storage can), after the thread's new state
    closing = [*unsent, (RESULT_EVENT, serde.dumps(output))]
    keep = bool(run["kwargs"].get("resumable"))
    delivery = None if not webhook else run_webhook(webhook, output)
    if not run["kwargs"].get("temporary"):
        finished = await storage.end_run(run["run_id"], status, thread=thread_fields,
                                         events=closing, keep=keep, worker_id=worker_id,
                                         webhook=delivery)
        return output, finished
    finished = await storage.finish_run(run["run_id"], status, thread=thread_fields,
                                        worker_id=worker_id, webhook=delivery)
    if finished is None and worker_id is not None and \
            await storage.get_run(run["run_id"]) is not None:
        return output, None  # another worker's run now: its end is that worker's
    await storage.delete_thread(run["thread_id"])  # before its waiters hear the result
    for event, data in closing:
        await storage.publish(run["run_id"], event, data, keep=keep)
    await storage.close_stream(run["run_id"])
    return output, finished


async def _rollback(threads: ThreadService, run: dict[str, Any], graph: Any) -> None:
    """Undo a cancelled run: its checkpoints and its record go; the thread is as before.

    The record goes last: deleting it wakes those waiting for the run, who then find
    the thread already restored."""
    storage = threads.ctx.storage
    await storage.checkpointer.adelete_for_runs([run["run_id"]])
    if graph is not None:
        active = [r for r in await storage.list_active_runs(run["thread_id"])
                  if r["run_id"] != run["run_id"]]
        await threads.refresh(run["thread_id"], graph, status="busy" if active else None)
    await storage.delete_run(run["run_id"])
