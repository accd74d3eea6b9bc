"""The run: supersteps, pauses and durability, written once for both drivers.

``Loop`` extends the thread state (``threadloom.engine.thread.ThreadState``: restore,
plan, apply, seal) with a run on it. ``Loop.run()`` is a generator: it plans, applies and
decides, and *yields* every piece of I/O it needs as a typed request
(``threadloom.engine.requests``: ``GetTuple``, ``Put``, ``PutWrites``, ``PutWithWrites``
- a checkpoint and its first pending writes in one saver call -, ``RunTasks``, ...). The
sync driver performs each request with plain calls, the async driver awaits the saver's
async methods; the algorithm itself exists in one place. What the stream events it emits
carry is built in ``threadloom.engine.payloads``.

A superstep: plan the tasks triggered by the last step's writes (a pure function of the
checkpoint), run them, apply all their writes at once through the channels, save a
checkpoint. Interrupts stop at a step boundary (``interrupt_before``/``after``) or inside
a task (``interrupt()``); finished siblings' writes are saved as pending writes so a
resumed run does not redo them.
"""

from __future__ import annotations

import uuid
import warnings
from collections import deque
from collections.abc import Generator
from typing import Any

from threadloom.channels import BaseChannel
from threadloom.checkpoint._values.history import APPLIED_KEY
from threadloom.checkpoint.base import Checkpoint, create_checkpoint_id, empty_checkpoint
from threadloom.checkpoint.serde.types import _DeltaSnapshot
from threadloom.constants import (
    CONFIG_KEY_NODE_FINISHED,
    CONFIG_KEY_RUN_ENDED,
    CONFIG_KEY_STRICT_RESUME,
    ERROR,
    INPUT,
    INTERRUPT,
    NO_WRITES,
    NULL_TASK_ID,
    PUSH,
    START,
    TASKS,
)
from threadloom.engine.delta import exit_delta_task_id, prepare_writes
from threadloom.engine.node_cache import cache_key, decode_writes, encode_writes
from threadloom.engine.payloads import (
    as_dict,
    checkpoint_payload,
    debug_payload,
    message_ids,
    message_metadata,
    task_result_payload,
    task_start_payload,
    update_payload,
)
from threadloom.engine.program import Program
from threadloom.engine.requests import (
    CacheGet,
    CacheSet,
    GetTuple,
    LatestBefore,
    Put,
    PutWithWrites,
    PutWrites,
    Request,
    RunTasks,
    Settle,
)
from threadloom.engine.scope import ReplayPoint, Scope
from threadloom.engine.task import (
    Task,
    checkpoint_id_bytes,
    is_resume_map,
    planned_task_id,
    task_order,
    task_path_str,
)
from threadloom.engine.thread import (
    PendingWrites,
    ThreadState,
    delta_histories,
    stable_ns,
    subgraph_state_config,
)
from threadloom.errors import (
    EmptyInputError,
    ErrorCode,
    GraphDrained,
    GraphInterrupt,
    GraphRecursionError,
    PausedWithoutCheckpointerWarning,
    UnknownInterruptError,
    create_error_message,
)
from threadloom.types import Command, Interrupt, Send


class Loop(ThreadState):
    """One run of a program on one thread (or on no thread, without a checkpointer)."""

    def __init__(
        self,
        program: Program,
        input: Any,
        config: dict[str, Any],
        scope: Scope,
        *,
        checkpointer: Any,
        interrupt_before: Any,
        interrupt_after: Any,
        durability: str,
        recursion_limit: int,
        input_writes: Any,
        output: Any,
        graph_name: str,
        out: deque[Any],
        persistent_ns: str | None = None,
    ) -> None:
        super().__init__(program, config, scope, checkpointer=checkpointer,
                         durability=durability, ns=persistent_ns)
        self.input = input
        self.interrupt_before = interrupt_before
        self.interrupt_after = interrupt_after
        self.recursion_limit = recursion_limit
        self.step_timeout: float | None = None  # the graph's step_timeout (the drivers')
        # the values stream, when it is not the output (a Pregel's stream_channels): the
        # channels whose writes emit it, and the function of the channels it shows
        self.values_keys: Any = None
        self.values_fn: Any = None
        # stream(output_keys=...): the state keys the updates stream shows (None: all)
        self.update_keys: Any = None
        self.input_writes = input_writes
        self.output_fn = output
        self.graph_name = graph_name
        # a subgraph compiled with checkpointer=True: it keeps its state from run to run
        self.persistent = persistent_ns is not None
        self.pending: PendingWrites = PendingWrites(None)
        # the running step resumes one whose checkpoint holds other tasks' writes
        self.partial_step = False
        self.out = out
        # the configurable keys streamed checkpoint configs carry (_streamed_configurable)
        self._stream_conf: dict[str, Any] | None = None
        self.status = "pending"
        self.interrupts: list[Interrupt] = []
        # the channels as a paused run shows them (see _show_finished), else None
        self.view: dict[str, BaseChannel] | None = None
        # durability="exit": the put of the run's last checkpoint, made at its end
        self._unsaved: Put | None = None
        # a program that outputs values only when written (Pregel): whether this run did
        self.wrote_values = False
        # durability="exit": the id of the stub checkpoint the delta writes of a thread's
        # first run are recorded on (see _save_exit)
        self._stub_id: str | None = None
        # interrupts of tasks called from running tasks (``@task``), in the order they paused
        self.call_interrupts: list[Interrupt] = []
        # how many tasks the running step has, counting those whose writes a resume
        # recovered (a task running alone in such a step still has siblings)
        self.step_tasks = 0
        # error handlers started in the running step (see _error_handler_task): all of
        # them, and those the driver has yet to start
        self.handlers: list[Task] = []
        self.spawned: list[Task] = []
        # the put of the run's input checkpoint, held until its input task's writes can
        # go with it (one saver call, see _with_held_put)
        self._held_put: Put | None = None
        # called with each node's name as it ends (a caller's hook, see task_done)
        self._node_finished = (self.config.get("configurable") or {}).get(
            CONFIG_KEY_NODE_FINISHED)
        # the tasks of the step the run paused in (interrupted or interrupt_before)
        self.paused_step: list[Task] | None = None

    # -- checkpoints, per durability --------------------------------------------------

    def _new_checkpoint(
        self, step: int, source: str, *, save: bool = False, hold: bool = False
    ) -> Generator[Request, Any, None]:
        """Seal the channels into a new checkpoint and (per durability) save it; ``hold``
        (a run's input checkpoint): its put waits for its input task's writes."""
        if (self.durability == "exit" and self.checkpointer is not None
                and self.checkpoint_config is None and self.program.delta_channels
                and self._stub_id is None):
            self._stub_id = create_checkpoint_id()  # sorts before the run's checkpoints
        put = self.seal(step, source)
        if put is None:
            return
        if self.durability == "exit" and not save:
            self._unsaved = self._merge_unsaved(put)
        elif hold and self.durability != "exit" and START in self.program.nodes:
            # its input task runs next, and its writes are kept on it: both go together
            self._held_put = put
        else:
            yield put
        if "checkpoints" in self.scope.modes or "debug" in self.scope.modes:
            self._emit_checkpoint(put.checkpoint, put.metadata, self.parent_config)

    def _merge_unsaved(self, put: Put) -> Put:
        # With durability="exit" only the last checkpoint is written: its new_versions must
        # cover every channel that changed since the last saved one.
        unsaved = self._unsaved
        if unsaved is None:
            return put
        changed = {**unsaved.new_versions, **put.new_versions}
        metadata = put.metadata
        if APPLIED_KEY in metadata:  # every step's writes were recorded on that parent
            metadata = {**metadata,
                        APPLIED_KEY: [*unsaved.metadata.get(APPLIED_KEY, ()),
                                      *metadata[APPLIED_KEY]]}
        return Put(unsaved.config, put.checkpoint, metadata, changed)

    def should_interrupt(self, nodes: Any, tasks: list[Task]) -> bool:
        """Breakpoints fire once per change: resuming moves past the one that stopped us."""
        if not nodes:
            return False
        # (versions of one saver compare with each other; their type is the saver's)
        versions: dict[str, Any] = self.checkpoint["channel_versions"]
        seen: dict[str, Any] = self.checkpoint["versions_seen"].get(INTERRUPT, {})
        for k, v in versions.items():  # any channel newer than the breakpoint saw
            last = seen.get(k)
            if last is None or (v is not None and v > last):
                break
        else:
            return False
        hit = any(
            (nodes == "*" or t.name in nodes) and not t.node.hidden for t in tasks
        )
        if hit:
            self.checkpoint["versions_seen"][INTERRUPT] = dict(versions)
        return hit

    def mark_breakpoints_passed(self) -> None:
        self.checkpoint["versions_seen"][INTERRUPT] = dict(self.checkpoint["channel_versions"])

    # -- output and stream ----------------------------------------------------------

    def output(self) -> Any:
        return self.output_fn(self.view if self.view is not None else self.channels)

    def emit(self, mode: str, payload: Any) -> None:
        self.scope.emit(mode, payload, self.ns)

    def _wrote_output(self) -> bool:
        """Whether the last applied step changed any of the channels the run outputs (or
        streams as values)."""
        updated = self.updated
        if updated is None:
            return True
        output = self.program.output_channels
        return (output in updated if isinstance(output, str) else
                not updated.isdisjoint(output)) or (
            self.values_keys is not None and self._wrote(self.values_keys))

    def _emit_values(self) -> None:
        if self.program.values_on_write:
            # (a Pregel: only a step that wrote the output - or the stream channels it
            # names for the values stream - emits one)
            if self._wrote(self.program.output_channels):
                self.wrote_values = True
            streamed = self.values_keys
            if not self._wrote(self.program.output_channels if streamed is None else streamed):
                return
        elif self.values_keys is not None and self.updated is not None and not self._wrote(
            self.values_keys
        ):
            return  # output_keys given: only a step that wrote one of them emits values
        if "values" in self.scope.modes:
            view = self.view if self.view is not None else self.channels
            self.emit("values", self.output() if self.values_fn is None
                      else self.values_fn(view))

    def _wrote(self, keys: Any) -> bool:
        """Whether the last applied step wrote one of ``keys`` (a name or names)."""
        keys = (keys,) if isinstance(keys, str) else keys
        return self.updated is not None and bool(self.updated.intersection(keys))

    def _emit_checkpoint(
        self, saved: Checkpoint, metadata: dict[str, Any], parent: Any,
        interrupts: dict[str, tuple[Interrupt, ...]] | None = None, *,
        resumed: bool = False,
    ) -> None:
        """Stream a checkpoint (``checkpoints``/``debug`` modes) with the tasks it plans;
        ``interrupts``: those its tasks already raised. ``resumed``: the checkpoint the
        run resumes, whose ``parent`` is as the saver gave it (otherwise ``parent`` is the
        config of the run's previous checkpoint, and shown with the run's keys)."""
        next_tasks = self.plan(self.step + 1, for_execution=False)
        if self.durability == "exit" and self._unsaved is not None:
            # not saved by this run (only the last one is, at exit): streamed with no
            # parent, as LangGraph streams it
            parent = None
        # As LangGraph streams them: the run's own configurable keys (its private ones
        # left out) beside the checkpoint's thread, namespace and id; a checkpoint whose
        # metadata names the enclosing graphs' checkpoints also has their map, with its own.
        own = self._streamed_configurable()
        parents = metadata.get("parents")
        conf = {**own, **(self.checkpoint_config or {}).get("configurable", {})}
        if parents:
            conf["checkpoint_map"] = {**parents, conf.get("checkpoint_ns", self.ns):
                                      conf.get("checkpoint_id")}
        if parent is not None:
            pconf = parent["configurable"]
            if pconf.get("checkpoint_id"):
                pconf = {"thread_id": pconf.get("thread_id"),
                         "checkpoint_ns": pconf.get("checkpoint_ns", ""),
                         "checkpoint_id": pconf.get("checkpoint_id")}
                if not resumed:  # this run's previous checkpoint: its config
                    pconf = {**own, **pconf}
                if parents:
                    pconf["checkpoint_map"] = {**parents, pconf["checkpoint_ns"]:
                                               pconf["checkpoint_id"]}
                parent = {"configurable": pconf}
            else:
                parent = None
        payload = checkpoint_payload(
            {"configurable": conf}, parent, self.output(), metadata, next_tasks, interrupts,
            [subgraph_state_config(t, self.thread_id) for t in next_tasks])
        self.emit("checkpoints", payload)
        self.emit("debug", debug_payload("checkpoint", self.step, payload))

    def _streamed_configurable(self) -> dict[str, Any]:
        """The run's configurable keys a streamed checkpoint config carries: all but the
        private ones (LangGraph's ``__pregel_*``, threadloom's ``__threadloom_*``) and
        those naming a checkpoint (each streamed config names its own). Made once a run,
        at its first streamed checkpoint."""
        own = self._stream_conf
        if own is None:
            own = self._stream_conf = {
                k: v for k, v in (self.config.get("configurable") or {}).items()
                if not k.startswith(("__pregel_", "__threadloom_"))
                and k not in ("checkpoint_id", "checkpoint_map")
            }
        return own

    def task_started(self, task: Task) -> None:
        if task.node.hidden:
            return
        if "tasks" in self.scope.modes or "debug" in self.scope.modes:
            payload = task_start_payload(task)
            self.emit("tasks", payload)
            self.emit("debug", debug_payload("task", self.step + 1, payload))

    def _emit_update(self, task: Task) -> None:
        if "updates" in self.scope.modes and not task.node.hidden:
            program = self.program
            update = {task.name: update_payload(task, program.state_keys,
                                                program.output_channels, self.update_keys)}
            if task.cached:
                update["__metadata__"] = {"cached": True}
            self.emit("updates", update)

    # -- the node cache -------------------------------------------------------------

    def _from_cache(
        self, tasks: list[Task], siblings: int
    ) -> Generator[Request, Any, tuple[list[Task], dict[str, Any]]]:
        """Serve tasks of nodes with a ``CachePolicy`` from the cache; return the tasks
        still to run and the cache keys of those to store once they succeed."""
        keys: dict[str, Any] = {}
        for task in tasks:
            policy = task.node.cache_policy
            if policy is not None:
                keys[task.id] = (task.node.cache_ns, cache_key(policy, task.input))
        if not keys:
            return tasks, keys
        found = yield CacheGet(list(dict.fromkeys(keys.values())))
        if not found:
            return tasks, keys
        remaining = []
        for task in tasks:
            key = keys.get(task.id)
            writes = decode_writes(found[key]) if key in found else None
            if writes is None:
                remaining.append(task)
                continue
            del keys[task.id]
            task.writes = writes
            task.cached = True
            yield from self.task_done(task, siblings)
        return remaining, keys

    def _to_cache(self, ran: list[Task], keys: dict[str, Any]) -> Generator[Request, Any, None]:
        """Store the writes of the cacheable tasks that succeeded."""
        pairs = {}
        failed = {h.path[1] for h in self.handlers}  # failures handed to error handlers
        for task in ran:
            key = keys.get(task.id)
            if (key is not None and task.error is None and not task.paused
                    and task.path not in failed):
                pairs[key] = (encode_writes(task.writes), task.node.cache_policy.ttl)
        if pairs:
            yield CacheSet(pairs)

    def task_done(self, task: Task, siblings: int) -> list[Request]:
        """Bookkeeping when a task ends (on the driver's thread): stream it, save its writes."""
        task.done = True
        modes = self.scope.modes
        finished = self._node_finished
        if (modes or finished is not None) and task.error is None and not task.paused \
                and not task.node.hidden:
            if finished is not None:  # the caller asked to hear of each node that ends
                finished(task.name)
            self._emit_update(task)
            if "messages" in modes:
                self._emit_node_messages(task)
        if modes and ("tasks" in modes or "debug" in modes) and not task.node.hidden:
            payload = task_result_payload(task, self.program.state_keys)
            self.emit("tasks", payload)
            self.emit("debug", debug_payload("task_result", self.step + 1, payload))
        if self.program.delta_channels and task.error is None and not task.interrupts:
            task.writes = prepare_writes(self.channels, list(task.writes))
        handler = None if task.node.error_handler is None else self._error_handler_task(task)
        if handler is not None:
            self.step_tasks += 1
            self.handlers.append(handler)
            self.spawned.append(handler)
        if self.checkpointer is None:  # (nothing is saved: _save_task_writes has nothing)
            requests: list[Request] = []
        else:
            requests = self._save_task_writes(task, siblings, handler is not None)
        if self._held_put is not None:
            requests = self._with_held_put(requests)
        if handler is not None:
            # the handler's writes stand for the failure in this step (the Send stays
            # stored, so a resume starts the handler again without the failed node)
            task.writes = []
        return requests

    def take_held_put(self) -> Put | None:
        """The held put of the input checkpoint (see ``_with_held_put``), now to be sent
        on its own; None when none is held. The drivers send it when a run ends before
        its input task did (a failed or cancelled step)."""
        request, self._held_put = self._held_put, None
        return request

    def _with_held_put(self, requests: list[Request]) -> list[Request]:
        """The input task's requests, the held put of the input checkpoint first: one
        ``put_with_writes`` request when the first of them is the task's ``put_writes``
        (on that checkpoint), so a saver that can stores both in one round trip."""
        held = self.take_held_put()
        if held is None:
            return requests
        writes = requests[0] if requests else None
        if (isinstance(writes, PutWrites)
                and writes.config["configurable"].get("checkpoint_id") == held.checkpoint["id"]):
            return [PutWithWrites(held, writes), *requests[1:]]
        return [held, *requests]

    def _error_handler_task(self, task: Task) -> Task | None:
        """The task of the error handler ``task`` failed into (its one write is the Send
        of its failure, see ``drivers._fail``), to run in this step beside the tasks
        still running; None for any other task, and when a breakpoint before the handler
        defers it to the next step (the Send is then applied as any other)."""
        name = task.node.error_handler
        if name is None or len(task.writes) != 1:
            return None
        channel, packet = task.writes[0]
        if channel != TASKS or not isinstance(packet, Send) or packet.node != name:
            return None
        stop = self.interrupt_before
        if stop and (stop == "*" or name in stop):
            return None
        step = self.step + 1
        tid = planned_task_id(checkpoint_id_bytes(self.checkpoint["id"]), self.ns, step,
                              name, PUSH, task.id)
        return self.new_task(tid, name, (PUSH, task.path, ERROR), packet.arg,
                             self.program.nodes[name], (), step, task.managed)

    def _save_task_writes(self, task: Task, siblings: int, handled: bool) -> list[Request]:
        """The requests that record a finished task's writes as pending writes (none when
        the step's checkpoint will hold them)."""
        if self.checkpointer is None or self.checkpoint_config is None:
            return []
        if task.paused:
            writes: list[tuple[str, Any]] = [(INTERRUPT, list(task.interrupts))]
            if task.has_answers():
                writes.append(task.resume_write())
        elif isinstance(task.error, GraphDrained):
            return []  # not a failure: the task runs again when the run is resumed
        elif task.error is not None:
            writes = [(ERROR, repr(task.error))]
        elif (siblings > 1 or self.partial_step or self.writes_delta(task) or handled
              or (self.step_tasks > 1 and self.durability != "exit")
              or (task.name == START and self.durability != "exit")):
            # Only needed when a sibling may still fail or pause (alone, the task's writes
            # go straight into the next checkpoint, and history derives its result from
            # there), when the step's checkpoint already records other tasks' results
            # (a resumed step: its writes then list every task's), or when they are a
            # delta channel's record (threadloom.engine.delta). The input task's writes
            # are kept on the input checkpoint as LangGraph keeps them (one write per
            # run, not per step: the input checkpoint then shows where the input went).
            writes = list(task.writes) or [(NO_WRITES, None)]
        else:
            return []
        if self.durability == "exit" and self.writes_delta(task) and self._unsaved:
            # The step's own checkpoint is never saved: record the delta writes on the
            # last saved one, under ids that sort by step.
            delta = self.program.delta_channels
            exit_id = exit_delta_task_id(self.step + 1, task.id)
            self.recorded_ids[task.id] = exit_id
            self._exit_writes.append(PutWrites(
                self._unsaved.config, [(c, v) for c, v in task.writes if c in delta],
                exit_id, task_path_str(task.path),
            ))
        request = self.put_writes(task.id, writes, task_path=task_path_str(task.path))
        if self.durability == "exit":
            self._exit_writes.append(request)
            return []
        return [request]

    def _emit_node_messages(self, task: Task) -> None:
        """Messages a node returned that were not already streamed token by token."""
        from langchain_core.messages import BaseMessage, RemoveMessage

        seen = self.scope.message_ids
        # a message a node received in its input is not news when it (or a graph above
        # it, returning the subgraph's state) hands it back, in this run
        seen.update(message_ids(task.input, BaseMessage))
        meta: dict[str, Any] | None = None
        for channel, value in task.writes:
            if channel not in self.program.state_keys:
                continue
            for message in value if isinstance(value, list) else (value,):
                if not isinstance(message, BaseMessage) or isinstance(message, RemoveMessage):
                    continue
                if message.id is not None and message.id in seen:
                    continue
                if message.id is not None:
                    seen.add(message.id)
                if meta is None:
                    meta = message_metadata(self.config, task)
                self.emit("messages", (message, meta))

    # -- the run --------------------------------------------------------------------

    _exit_writes: list[PutWrites]

    def run(self) -> Generator[Request, Any, None]:
        self._exit_writes = []
        saved = None
        if self.checkpointer is not None:
            if self.thread_id is None:
                raise ValueError(
                    "Checkpointer requires one or more of the following 'configurable' keys: "
                    "thread_id, checkpoint_ns, checkpoint_id. Pass "
                    "config={'configurable': {'thread_id': '...'}} to invoke/stream."
                )
            conf = self.config.get("configurable") or {}
            replay_id = conf.get("checkpoint_id")
            if replay_id and not self.scope.nested and self.ns:
                replay_id = self._enter_from_subgraph(conf)
            read_conf = {"thread_id": self.thread_id, "checkpoint_ns": self.ns}
            if replay_id and not self.scope.nested:
                read_conf["checkpoint_id"] = replay_id
            else:
                replay_id = None
            replay = self.scope.replay
            if (self.scope.nested and self.persistent and replay is not None
                    and self.ns not in replay.entered):
                # the first run of a stateful subgraph in a replay: back to its past
                replay.entered.add(self.ns)
                target = replay.targets.get(self.ns)
                if target is not None:
                    read_conf["checkpoint_id"] = target
                    saved = yield GetTuple({"configurable": read_conf})
                    replay_id = None if replay.resume else target
                elif replay.before is not None:
                    saved = yield LatestBefore({"configurable": read_conf}, replay.before)
                else:
                    saved = yield GetTuple({"configurable": read_conf})
            else:
                saved = yield GetTuple({"configurable": read_conf})
            if saved is not None and "checkpoint_id" in read_conf:
                self.branch_from = read_conf["checkpoint_id"]
        else:
            replay_id = None
        ended = False
        try:
            yield from self._start(saved, replay_id)
            yield from self._supersteps()
            ended = True
        finally:
            held = self.take_held_put()
            if held is not None:  # the run stopped before its input task ended
                yield held
            if (self.durability == "exit" and self.scope.nested and not self.persistent
                    and self.status == "done"):
                # a subgraph that finished saves nothing under durability="exit" (only
                # one that stops - paused or failed - must be found again on resume, and
                # a checkpointer=True one keeps its state from run to run)
                self._unsaved = None
                self._exit_writes = []
            if self.durability == "exit" and self.checkpointer is not None:
                yield from self._save_exit()
        if ended and self.checkpointer is not None and self.checkpoint_config is not None:
            # done or paused: the saver stores what its per-step checks left for later
            yield Settle(self.checkpoint_config)
        if ended and not self.scope.nested:
            ended_hook = (self.config.get("configurable") or {}).get(CONFIG_KEY_RUN_ENDED)
            if ended_hook is not None:
                ended_hook(self)

    def _save_exit(self) -> Generator[Request, Any, None]:
        """durability="exit": save the run's writes, then its last checkpoint (a write
        that fails leaves no checkpoint that would read it). Delta writes recorded on a
        thread that had no checkpoint yet go onto a stub: an empty checkpoint (step -2)
        saved first, as the last checkpoint's parent."""
        put, self._unsaved = self._unsaved, None
        writes, self._exit_writes = self._exit_writes, []
        self.exit_snapshots = set()
        if put is not None:
            parent = put.config
            if not (parent or {}).get("configurable", {}).get("checkpoint_id"):
                # writes of channels the last checkpoint stores whole are not needed
                whole = {k for k, v in put.checkpoint["channel_values"].items()
                         if isinstance(v, _DeltaSnapshot)}
                writes = [w for w in writes if w.config is not parent
                          or any(c not in whole for c, _ in w.writes)]
            if not (parent or {}).get("configurable", {}).get("checkpoint_id") and any(
                w.config is parent for w in writes
            ):
                stub = yield from self._put_stub(parent)
                writes = [PutWrites(stub, w.writes, w.task_id, w.task_path)
                          if w.config is parent else w for w in writes]
                put = Put(stub, put.checkpoint, put.metadata, put.new_versions)
        yield from writes
        if put is not None:
            yield put

    def _put_stub(self, parent: Any) -> Generator[Request, Any, Any]:
        stub: Checkpoint = empty_checkpoint(checkpoint_id=self._stub_id)
        metadata = {**self.metadata_base, "source": "input", "step": -2}
        if self.checkpoint_map:
            metadata["parents"] = dict(self.checkpoint_map)
        saved = yield Put(parent, stub, metadata, {})
        return saved if saved is not None else self.config_for(stub["id"])

    def _at_head(self, saved: Any) -> Generator[Request, Any, bool]:
        """Whether ``saved`` is the thread's latest checkpoint (a run pinned to an older,
        superseded one is a fork: strict resume does not check its interrupts)."""
        if saved is None or self.branch_from is None:
            return True
        head = yield GetTuple({"configurable": {"thread_id": self.thread_id,
                                                "checkpoint_ns": self.ns}})
        return head is None or head.config["configurable"]["checkpoint_id"] == (
            saved.config["configurable"]["checkpoint_id"])

    def _enter_from_subgraph(self, conf: dict[str, Any]) -> str:
        """The root graph run with a subgraph's checkpoint config (``checkpoint_ns`` names
        the subgraph, ``checkpoint_map`` the checkpoints of the graphs above it): run the
        root from its checkpoint in that map, and let the subgraphs on the way start from
        theirs. Returns the root checkpoint id."""
        cmap: dict[str, str] = dict(conf.get("checkpoint_map") or {})
        root = cmap.pop("", None)
        if root is None:
            raise ValueError(
                f"Cannot run the graph from checkpoint_ns {self.ns!r}: the config names a "
                "subgraph's checkpoint but no checkpoint_map with the root graph's "
                "checkpoint (''). Pass the config from get_state(..., subgraphs=True)."
            )
        cmap[self.ns] = conf["checkpoint_id"]
        targets = {stable_ns(ns): cid for ns, cid in cmap.items()}
        self.scope.replay = ReplayPoint(
            None, targets, resume=isinstance(self.input, Command)
        )
        self.ns = ""
        self.checkpoint_map = {}
        return root

    def _start(self, saved: Any, replay_id: str | None) -> Generator[Request, Any, None]:
        inp = self.input
        resuming = inp is None or isinstance(inp, Command)
        # Command(resume=...) at an explicit checkpoint answers that checkpoint's
        # interrupts: a resume, not a replay
        resuming_command = isinstance(inp, Command) and inp.resume is not None
        if isinstance(inp, Command):
            if inp.resume is None and inp.update is None and not inp.goto:
                raise EmptyInputError(
                    "Received empty Command input: give Command(resume=...), "
                    "Command(update=...) or Command(goto=...)."
                )
            if inp.resume is not None and self.checkpointer is None:
                raise RuntimeError(
                    "Cannot use Command(resume=...) without checkpointer: compile the graph "
                    "with checkpointer=MemorySaver() (or a durable saver) to resume."
                )
        if saved is not None:
            histories = yield from delta_histories(self.program, saved)
            stored = self.restore(saved, histories)
            if replay_id and not resuming_command:
                # Replaying from a past checkpoint (or new input on it): forget its pending
                # writes so every task (and interrupt) runs again, on a fork so history
                # stays intact. A checkpoint that is already a branch point (update_state,
                # __copy__) is run from directly.
                yield from self._replay(saved)
            else:
                self.pending = PendingWrites(stored, saved.config)
                if replay_id and not (yield from self._at_head(saved)):
                    # Answers for a checkpoint the thread has moved past: what its tasks
                    # stored belongs to the branch that went on from it, so every task
                    # runs again (the paused ones with the answers).
                    self.pending.succeeded = {}
                    self.pending.errors = {}
        else:
            self.checkpoint = empty_checkpoint(ts="")
            self.channels = self.program.new_channels()
        self.stop = self.step + self.recursion_limit + 2
        if (
            not resuming
            and self.scope.nested
            and saved is not None
            and (
                (self.scope.resuming and not self.persistent)
                or self.plan(self.step + 1, for_execution=False)
            )
        ):
            # A subgraph re-entered by its parent's re-run task continues where it paused
            # (its input is the same parent state it already received); when the parent
            # resumed, its task's subgraph continues even if it had finished (as edited
            # by update_state, say): nothing of it runs again.
            resuming = True
        if (
            resuming and saved is None and isinstance(inp, Command) and inp.resume is not None
            and not (inp.update or inp.goto) and not self.scope.nested
        ):
            # an answer for a thread that never ran: the graph starts (from an empty state)
            # and the first interrupt() takes the answer
            resuming = False
            inp = {} if self.program.output_channels != "__root__" else None
        self.scope.resuming = resuming
        if resuming:
            if saved is None and not (isinstance(inp, Command) and (inp.update or inp.goto)):
                if self.scope.nested:
                    return
                raise EmptyInputError(
                    "Received no input for __start__: this thread has no checkpoint to "
                    "resume. Pass the graph's input (e.g. a dict of state keys) instead of "
                    "None."
                )
            if saved is not None and ("checkpoints" in self.scope.modes
                                      or "debug" in self.scope.modes) and (
                    self.checkpoint["id"] == saved.checkpoint["id"]):
                # the run streams the checkpoint it resumes, with the interrupts it answers
                # (a replay that forked it streamed the fork instead, as LangGraph's does)
                self._emit_checkpoint(saved.checkpoint, saved.metadata or {},
                                      saved.parent_config, self.pending.interrupts,
                                      resumed=True)
            self.apply_null_writes(self.pending.null)
            delta = self.program.delta_channels
            if any(c in delta for c, _ in self.pending.null):
                self.delta_applied.append(NULL_TASK_ID)
            if (
                isinstance(inp, Command) and inp.resume is not None and not self.scope.nested
                and (self.config.get("configurable") or {}).get(CONFIG_KEY_STRICT_RESUME)
                and (yield from self._at_head(saved))
            ):
                check_strict_resume(inp.resume, self.pending.pending_interrupts())
            if isinstance(inp, Command):
                writes = prepare_writes(self.channels, list(self.input_writes(inp)))
                if writes:
                    self.apply_null_writes(writes)
                    if self.checkpointer is not None and self.checkpoint_config is not None:
                        # with the updates of earlier resumes of this step, which stay pending too
                        yield from self._record_input_writes(
                            writes, [*self.pending.null, *writes])
                if inp.resume is not None:
                    pending = self.pending.pending_interrupts()
                    box = self.scope.resume_box
                    if box.has_value and len(pending) > 1:
                        raise RuntimeError(
                            "When there are multiple pending interrupts, you must specify the "
                            "interrupt id when resuming: pass Command(resume={interrupt.id: "
                            "value, ...}). Pending ids: " + ", ".join(i.id for i in pending)
                        )
            self.mark_breakpoints_passed()
            self._emit_values()
        else:
            if saved is not None:
                # New input on a paused thread: drop the pending tasks (never run them).
                discarded = self.plan(self.step + 1, for_execution=False)
                if discarded:
                    self.apply(discarded)
            self.pending = PendingWrites(None)
            if self.program.direct_input is not None:
                self.updated = set(self.updated or ())
                writes = prepare_writes(self.channels, self.program.direct_input(inp))
                self.apply_null_writes(writes)
                yield from self._record_direct_input(writes)
            else:
                self.channels[START].update([inp])
                version = self.next_version()
                self.checkpoint["channel_versions"][START] = version
                self.updated = (self.updated or set()) | {START}
            # the input is recorded as seen by the (virtual) input task, as LangGraph does
            self.checkpoint["versions_seen"][INPUT] = {}
            # (saved at once under durability="exit" when it branches from a past checkpoint)
            yield from self._new_checkpoint(self.step + 1, "input", save=bool(replay_id),
                                            hold=True)
            self.stop = self.step + self.recursion_limit + 1

    def _record_direct_input(
        self, writes: list[tuple[str, Any]]
    ) -> Generator[Request, Any, None]:
        """A Pregel input written straight into its channels makes the input checkpoint:
        its delta writes are recorded on the checkpoint it extends (a thread's first
        input has none: the input checkpoint stores those channels whole)."""
        recorded = [(c, v) for c, v in writes if c in self.program.delta_channels]
        if not recorded or self.checkpointer is None:
            return
        if self.checkpoint_config is None:
            self.force_delta_snapshot = True
            return
        tid = str(uuid.uuid4())
        yield PutWrites(self.saver_config(self.checkpoint_config), recorded, tid, "")
        self.delta_applied.append(tid)

    def _record_input_writes(
        self, writes: list[tuple[str, Any]], stored: list[tuple[str, Any]]
    ) -> Generator[Request, Any, None]:
        """Store a ``Command``'s update (``writes``; ``stored``: with those of earlier
        resumes) as the writes of no task on the checkpoint it extends (under
        durability="exit", after a fork that is never saved: on the last saved
        checkpoint, under an exit id)."""
        delta = self.program.delta_channels
        if self.durability == "exit" and self._unsaved is not None:
            recorded = [(c, v) for c, v in writes if c in delta]
            if recorded:
                tid = exit_delta_task_id(self.step + 1, NULL_TASK_ID)
                self._exit_writes.append(PutWrites(self._unsaved.config, recorded, tid, ""))
                self.delta_applied.append(tid)
            return
        yield self.put_writes(NULL_TASK_ID, stored)
        if any(c in delta for c, _ in writes):
            self.delta_applied.append(NULL_TASK_ID)

    def _replay(self, saved: Any) -> Generator[Request, Any, None]:
        """Start replaying ``saved``: fork it, unless it is the thread's newest checkpoint
        and already a branch point (made by ``update_state`` or ``__copy__``)."""
        branch = (saved.metadata or {}).get("source") in ("update", "fork")
        before = saved.config["configurable"]["checkpoint_id"]
        if branch:
            parent = (saved.parent_config or {}).get("configurable") or {}
            before = parent.get("checkpoint_id") or before
            head = yield GetTuple({"configurable": {"thread_id": self.thread_id,
                                                    "checkpoint_ns": self.ns}})
            branch = head is not None and head.config["configurable"]["checkpoint_id"] == (
                saved.config["configurable"]["checkpoint_id"])
        if not self.scope.nested:
            if self.scope.replay is None:
                self.scope.replay = ReplayPoint(before)
            else:
                self.scope.replay.before = before
        if not branch:
            # The fork applies none of the writes recorded on the past checkpoint (they
            # belong to the branch that already continued from it). It is saved even
            # with durability="exit", so the run's writes are recorded on it.
            yield from self._new_checkpoint(self.step, "fork", save=True)

    def _supersteps(self) -> Generator[Request, Any, None]:
        first = True
        while True:
            step = self.step + 1
            if step > self.stop:
                raise GraphRecursionError(
                    create_error_message(
                        message=(
                            f"Recursion limit of {self.recursion_limit} reached without "
                            "hitting a stop condition. You can increase the limit by setting "
                            "the `recursion_limit` config key, e.g. "
                            "graph.invoke(inputs, {'recursion_limit': 100})."
                        ),
                        error_code=ErrorCode.GRAPH_RECURSION_LIMIT,
                    )
                )
            tasks = self.plan(step)
            if self._held_put is not None and not (len(tasks) == 1 and tasks[0].name == START):
                held = self.take_held_put()
                if held is not None:
                    yield held  # no input task to send it with
            if not tasks:
                self.status = "done"
                return
            if self.interrupt_before and self.should_interrupt(self.interrupt_before, tasks):
                self.status = "interrupt_before"
                self.paused_step = tasks
                self._pause(())
                return
            control = self.scope.control
            if control is not None and control.drain_requested:
                # Stop between supersteps: everything done so far is checkpointed (the
                # breakpoint check above comes first, so a resume does not skip it).
                self.status = "drained"
                raise GraphDrained(control.drain_reason or "shutdown")
            to_run = tasks
            if first:
                self.pending.adopt_legacy_ids(tasks, self.checkpoint["id"], self.ns, step)
            if first and self.pending.succeeded:
                to_run = []
                handlers = []
                for task in tasks:
                    done = self.pending.succeeded.get(task.id)
                    if done is not None:
                        # finished before the pause: its saved writes stand for it
                        task.writes = done
                        task.done = True
                        task.cached = True
                        self._emit_update(task)
                        handler = self._error_handler_task(task)
                        if handler is not None:  # it failed: its handler runs (again)
                            task.writes = []
                            handlers.append(handler)
                    else:
                        to_run.append(task)
                for handler in handlers:
                    done = self.pending.succeeded.get(handler.id)
                    if done is not None:
                        handler.writes, handler.done, handler.cached = done, True, True
                        self._emit_update(handler)
                    else:
                        to_run.append(handler)
                tasks = [*tasks, *handlers]
            if first:
                for task in to_run:
                    task.load_answers(self.pending.resumes.get(task.id),
                                      self.pending.interrupts.get(task.id, ()))
            p = self.pending
            # (under durability="exit" the step's own checkpoint is the one saved instead)
            self.partial_step = (
                first and self.durability != "exit" and bool(p.succeeded or p.errors)
            )
            first = False
            cache_keys: dict[str, Any] = {}
            if to_run and self.scope.cache is not None:
                to_run, cache_keys = yield from self._from_cache(to_run, len(tasks))
            self.handlers, self.spawned = [], []
            if to_run:
                self.step_tasks = len(tasks)
                modes = self.scope.modes
                if "tasks" in modes or "debug" in modes:  # (what task_started streams)
                    for task in to_run:
                        self.task_started(task)
                yield RunTasks(to_run)
            if self.handlers:  # error handlers the step's failures started
                to_run = [*to_run, *self.handlers]
                tasks = [*tasks, *self.handlers]
            if cache_keys:
                yield from self._to_cache(to_run, cache_keys)
            for task in to_run:
                if task.error is not None:
                    self.status = "error"
                    raise task.error
            paused = [t for t in tasks if t.paused] if len(tasks) > 1 else (
                tasks if tasks[0].paused else ())
            if paused:
                self.status = "interrupted"
                self.paused_step = tasks
                self._show_finished([t for t in tasks if not t.interrupts])
                # in the order the step planned them (LangGraph's: Send packets first)
                ordered = paused
                found = {i.id: i for t in ordered for i in t.interrupts}
                # one "updates" event per paused task, as each task's interrupt is saved
                per_task = [t.interrupts for t in ordered if t.interrupts]
                called = tuple(i for i in self.call_interrupts if i.id not in found)
                for i in called:  # tasks called by the paused ones
                    found.setdefault(i.id, i)
                if called:
                    per_task.append(called)
                self._pause(tuple(found.values()), per_task)
                return
            if self.program.delta_channels:
                self.note_applied(tasks)
            self.apply(tasks)
            if self.checkpointer is None:  # (nothing to save: the same, without a generator)
                self.seal(step, "loop")
            else:
                yield from self._new_checkpoint(step, "loop")
            if (self.program.values_on_write or "values" in self.scope.modes) \
                    and self._wrote_output():
                self._emit_values()
            if self.interrupt_after and self.should_interrupt(self.interrupt_after, tasks):
                self.status = "interrupt_after"
                self._pause(())
                return

    def _pause(
        self,
        interrupts: tuple[Interrupt, ...],
        per_task: list[tuple[Interrupt, ...]] | None = None,
    ) -> None:
        """Stop the run: ``interrupts`` are all it asks; ``per_task`` groups them by the
        task that asked (each group streams as its own ``updates`` event)."""
        if self.checkpointer is None and not self.scope.nested:
            warnings.warn(
                f"Graph '{self.graph_name}' paused ({self.status}) but has no checkpointer, "
                "so this pause can never be resumed. Compile it with a checkpointer, e.g. "
                "builder.compile(checkpointer=MemorySaver()).",
                PausedWithoutCheckpointerWarning,
                stacklevel=2,
            )
        self.interrupts = list(interrupts)
        if interrupts or not self.scope.nested:
            # (a subgraph stopped at a breakpoint says so through its parent only)
            for group in per_task or [interrupts]:
                self.emit("updates", {INTERRUPT: group})
        if "values" in self.scope.modes:
            if interrupts and self.update_keys is not None:
                # output_keys given: those keys' values (one key named alone: none), as
                # LangGraph streams them
                shown = self.values_fn(self.view if self.view is not None else self.channels)
                self.emit("values", {**(shown if isinstance(shown, dict) else {}),
                                     INTERRUPT: interrupts})
            elif interrupts:
                self.emit("values", {**as_dict(self.output()), INTERRUPT: interrupts})
            elif self.view is not None:  # finished siblings of a task paused at a breakpoint
                self.emit("values", self.output())

    def _show_finished(self, finished: list[Task]) -> None:
        """A step paused: what the run returns (and streams) is the state with the writes
        of the tasks that finished in that step applied. The channels and the checkpoint
        stay as they are (those writes are pending writes until the step completes)."""
        finished = [t for t in finished if t.writes]
        if not finished:
            return
        keys = self.program.state_keys
        grouped: dict[str, list[Any]] = {}
        for task in sorted(finished, key=task_order):
            for channel, value in task.writes:
                if channel in keys:
                    grouped.setdefault(channel, []).append(value)
        if not grouped:
            return
        view = dict(self.channels)
        for channel, values in grouped.items():
            chan = view[channel].copy()
            chan.update(values)
            view[channel] = chan
        self.view = view

    def raise_if_nested_pause(self) -> None:
        """A subgraph that paused must pause its parent task too."""
        if self.scope.nested and self.status in ("interrupted", "interrupt_before",
                                                 "interrupt_after"):
            raise GraphInterrupt(self.interrupts)


def check_strict_resume(resume: Any, pending: list[Interrupt]) -> None:
    """Strict resume (``CONFIG_KEY_STRICT_RESUME``): refuse, before anything is written, an
    answer that cannot go where it is meant to - a map naming an interrupt that is not
    pending (unknown, or already answered), an empty map, or one bare value while several
    interrupts wait."""
    pending_ids = tuple(sorted(i.id for i in pending))
    shown = ", ".join(pending_ids) or "none"
    if isinstance(resume, dict) and not resume:
        raise UnknownInterruptError(
            f"The resume map names no interrupt: give Command(resume={{interrupt_id: "
            f"answer}}). Pending interrupts: {shown}.",
            reason="empty_map", interrupt_ids=(), pending_ids=pending_ids,
        )
    if is_resume_map(resume):
        unknown = tuple(i for i in resume if i not in pending_ids)
        if unknown:
            raise UnknownInterruptError(
                f"Unknown or already-consumed interrupt: {', '.join(unknown)}. Pending "
                f"interrupts: {shown}.",
                reason="not_pending", interrupt_ids=unknown, pending_ids=pending_ids,
            )
    elif len(pending) > 1:
        raise UnknownInterruptError(
            "One answer given while there are multiple pending interrupts: answer them by "
            f"id with Command(resume={{interrupt_id: answer, ...}}). Pending: {shown}.",
            reason="ambiguous", interrupt_ids=(), pending_ids=pending_ids,
        )
