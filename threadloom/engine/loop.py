"""The superstep loop, written once for both drivers.

``Loop.run()`` is a generator: it plans, applies and decides, and *yields* every piece of
I/O it needs (``("get_tuple", config)``, ``("put", ...)``, ``("put_writes", ...)``,
``("put_with_writes", ...)``: a checkpoint and its first pending writes in one saver
call, ``("run", tasks)``). The sync driver performs each request with plain calls, the async
driver awaits the saver's async methods; the algorithm itself exists in one place.

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
from datetime import UTC, datetime
from functools import partial
from typing import Any

from threadloom.channels import MISSING, BaseChannel
from threadloom.checkpoint._stored.shape import check_write
from threadloom.checkpoint._values.history import APPLIED_KEY
from threadloom.checkpoint.base import Checkpoint, create_checkpoint_id
from threadloom.checkpoint.serde.base import CorruptCheckpointError
from threadloom.checkpoint.serde.types import _DeltaSnapshot
from threadloom.constants import (
    CONFIG_KEY_BRANCH,
    CONFIG_KEY_CHECKPOINTER,
    CONFIG_KEY_DURABILITY,
    CONFIG_KEY_NODE_FINISHED,
    CONFIG_KEY_SCOPE,
    CONFIG_KEY_STRICT_RESUME,
    CONFIG_KEY_TASK,
    ERROR,
    INPUT,
    INTERRUPT,
    NO_WRITES,
    NULL_TASK_ID,
    PULL,
    PUSH,
    RESUME,
    RETURN,
    RUN_DURABILITY_KEY,
    START,
    TASKS,
)
from threadloom.engine.delta import (
    COUNTERS_KEY,
    apply_history,
    delta_channels_to_snapshot,
    exit_delta_task_id,
    history_channels,
    next_counters,
    prepare_writes,
    restore_stored,
)
from threadloom.engine.node_cache import cache_key, decode_writes, encode_writes
from threadloom.engine.payloads import task_start_payload
from threadloom.engine.program import Program
from threadloom.engine.scope import ReplayPoint, Scope
from threadloom.engine.task import Task, checkpoint_id_bytes, planned_task_id, task_id
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
from threadloom.managed import managed_value
from threadloom.types import Command, Interrupt, Send

# configurable keys that identify a run, shown with the messages its nodes return
_MESSAGE_META_KEYS = ("thread_id", "checkpoint_id", "checkpoint_ns", "task_id", "run_id",
                      "assistant_id", "graph_id")
_SPECIAL = frozenset({ERROR, INTERRUPT, RESUME, NO_WRITES})
_METADATA_SKIP = frozenset({"thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map"})

Request = tuple[Any, ...]


def newer(version: Any, seen: Any) -> bool:
    return seen is None or (version is not None and version > seen)


def run_metadata(config: dict[str, Any]) -> dict[str, Any]:
    """User keys that go into every checkpoint's metadata (filterable in history)."""
    meta: dict[str, Any] = {}
    for key, value in (config.get("configurable") or {}).items():
        if (
            key not in _METADATA_SKIP
            and not key.startswith("__")
            and not key.startswith("langgraph_")
            and isinstance(value, (str, int, float, bool))
        ):
            meta[key] = value
    for key, value in (config.get("metadata") or {}).items():
        if not key.startswith("langgraph_") and key not in _METADATA_SKIP:
            meta[key] = value
    return meta


def migrate_checkpoint(program: Program, checkpoint: Checkpoint, writes: Any) -> Any:
    """Bring, in place, a checkpoint saved in a format older than the one threadloom
    writes (``v`` < 4, e.g. by an earlier LangGraph) to the program's channels; return
    its pending ``writes``, renamed likewise. Today's checkpoints are not looked at."""
    version = checkpoint.get("v", 1)
    if isinstance(version, int) and version >= 4:
        return writes
    # before v4 the Sends a checkpoint hands to its next step were kept beside the
    # channels, as "pending_sends": they are the tasks channel's value now
    sends = checkpoint.pop("pending_sends", None)
    if sends and TASKS in program.channels:
        checkpoint["channel_values"] = {**checkpoint["channel_values"], TASKS: list(sends)}
        versions = checkpoint["channel_versions"]
        if TASKS not in versions:
            versions[TASKS] = max(versions.values()) if versions else 1
    if program.migrate is not None:
        return program.migrate(checkpoint, writes or ())
    return writes


def restore_channels(
    program: Program, checkpoint: Checkpoint | None, histories: Any = None
) -> dict[str, BaseChannel]:
    """The channels as ``checkpoint`` stored them; ``histories`` (from
    ``delta_histories``) rebuild the channels stored as deltas."""
    if not checkpoint:
        return program.new_channels()
    values = checkpoint["channel_values"]
    if checkpoint.get("v", 4) < 4 and checkpoint.get("pending_sends") and TASKS not in values:
        # a checkpoint from before format 4 kept its Send packets beside the channels
        values = {**values, TASKS: list(checkpoint["pending_sends"])}
    histories = histories or {}
    return {
        k: apply_history(c, histories[k])
        if k in histories
        else restore_stored(c, values.get(k, MISSING))
        for k, c in program.channels.items()
    }


def delta_histories(program: Program, tup: Any) -> Generator[Request, Any, dict[str, Any]]:
    """Ask the saver for the history of the channels ``tup`` stores as deltas (none are
    asked for when the checkpoint stores every value: plain threads never walk)."""
    if tup is None:
        return {}
    cp = tup.checkpoint
    wanted = history_channels(program.history_specs, cp["channel_values"],
                              cp.get("channel_versions") or {})
    if not wanted:
        return {}
    got = yield ("get_delta_channel_history", tup.config, wanted)
    return dict(got or {})


def _write_where(task_id: str, channel: str, config: Any) -> str:
    conf = (config or {}).get("configurable", {})
    return (
        f"pending write of task {task_id!r} to channel {channel!r} (thread "
        f"{conf.get('thread_id')!r}, namespace {conf.get('checkpoint_ns', '')!r}, checkpoint "
        f"{conf.get('checkpoint_id')!r})"
    )


class PendingWrites:
    """A checkpoint's pending writes, grouped by task: what finished, failed or paused."""

    __slots__ = ("succeeded", "interrupts", "resumes", "errors", "null")

    def __init__(
        self, writes: list[tuple[str, str, Any]] | None, config: Any = None
    ) -> None:
        """``config``: the checkpoint's config, to name it if a write is damaged."""
        self.succeeded: dict[str, list[tuple[str, Any]]] = {}
        self.interrupts: dict[str, tuple[Interrupt, ...]] = {}
        self.resumes: dict[str, list[Any] | dict[str, Any]] = {}
        self.errors: dict[str, Any] = {}
        self.null: list[tuple[str, Any]] = []
        for tid, channel, value in writes or ():
            if tid == NULL_TASK_ID:
                if channel not in _SPECIAL:
                    self.null.append((channel, value))
            elif channel == INTERRUPT:
                check_write(channel, value, partial(_write_where, tid, channel, config))
                self.interrupts[tid] = tuple(value)
            elif channel == RESUME:
                check_write(channel, value, partial(_write_where, tid, channel, config))
                self.resumes[tid] = dict(value) if isinstance(value, dict) else list(value)
            elif channel == ERROR:
                self.errors[tid] = value
            else:
                bucket = self.succeeded.setdefault(tid, [])
                if channel != NO_WRITES:
                    bucket.append((channel, value))

    def adopt_legacy_ids(
        self, tasks: list[Task], checkpoint_id: str, ns: str, step: int
    ) -> None:
        """File under the ids ``tasks`` have now the writes a checkpoint saved before
        planned tasks took LangGraph's ids (``planned_task_id``): threadloom then keyed
        them by ``task_id`` of the same parts. Nothing happens when every write's task
        was planned (the usual case, checked first)."""
        books = (self.succeeded, self.interrupts, self.resumes, self.errors)
        if not any(books):  # no writes of any task: nothing to file
            return
        ids = {t.id for t in tasks}
        if all(tid in ids for book in books for tid in book):
            return
        for task in tasks:
            why = task.triggers if task.path[0] == PULL else task.path[1:2]
            old = task_id(checkpoint_id, ns, step, task.name, task.path[0], *why)
            for book in books:
                if old in book and task.id not in book:
                    book[task.id] = book.pop(old)

    def pending_interrupts(self) -> list[Interrupt]:
        # one interrupt may be recorded twice: by a called task and by its caller, which
        # the call's interrupt paused too
        found: dict[str, Interrupt] = {}
        for tid, its in self.interrupts.items():
            if tid not in self.succeeded:
                for i in its:
                    found.setdefault(i.id, i)
        return list(found.values())


class Loop:
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
        self.program = program
        self.input = input
        self.config = config
        self.scope = scope
        self.checkpointer = checkpointer
        self.interrupt_before = interrupt_before
        self.interrupt_after = interrupt_after
        self.durability = durability
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
        conf = config.get("configurable") or {}
        self.thread_id = conf.get("thread_id")
        self.persistent = persistent_ns is not None
        self.ns: str = persistent_ns if persistent_ns is not None else conf.get(
            "checkpoint_ns", ""
        )
        self.checkpoint_map: dict[str, str] = dict(conf.get("checkpoint_map") or {})
        self.persistent = persistent_ns is not None
        self.channels: dict[str, BaseChannel] = {}
        self.checkpoint: Checkpoint = None  # type: ignore[assignment]
        self.checkpoint_config: dict[str, Any] | None = None
        self.parent_config: dict[str, Any] | None = None
        self.metadata_base = run_metadata(config)
        self.step = -2
        self.stop = 0
        self.updated: set[str] | None = None
        self.pending: PendingWrites = PendingWrites(None)
        # the running step resumes one whose checkpoint holds other tasks' writes
        self.partial_step = False
        self.out = out
        self.status = "pending"
        self.interrupts: list[Interrupt] = []
        # the channels as a paused run shows them (see _show_finished), else None
        self.view: dict[str, BaseChannel] | None = None
        self._unsaved: tuple[Any, ...] | None = None
        # the checkpoint a run was told to start from (checkpoint_id): its first put branches
        self.branch_from: str | None = None
        # a program that outputs values only when written (Pregel): whether this run did
        self.wrote_values = False
        self._config_bases: tuple[Any, ...] | None = None
        self._int_version = 0
        # Delta channels (see threadloom.engine.delta): counters since each one's last
        # snapshot, as the last checkpoint's metadata holds them; force a snapshot of
        # every delta channel at the next checkpoint (a thread's first update_state).
        self.delta_counters: dict[str, Any] = {}
        self.force_delta_snapshot = False
        # the task ids of the parent's recorded writes the next checkpoint applies, in
        # order (its metadata's APPLIED_KEY, see threadloom.checkpoint._values.history);
        # with durability="exit", the ids the step's writes were recorded under instead
        self.delta_applied: list[str] = []
        self._exit_ids: dict[str, str] = {}
        # durability="exit": delta channels whose snapshot fell due at a checkpoint that
        # is never saved; every later checkpoint of the run stores them whole
        self._exit_snapshots: set[str] = set()
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
        self._held_put: Request | None = None

    # -- versions and checkpoints ---------------------------------------------------

    def _next_version(self) -> Any:
        versions = self.checkpoint["channel_versions"]
        if self.checkpointer is None:
            self._int_version += 1
            return self._int_version
        try:
            current = max(versions.values()) if versions else None
            return self.checkpointer.get_next_version(current, None)
        except (TypeError, ValueError) as exc:  # a damaged row: versions that do not compare
            raise CorruptCheckpointError(
                f"Stored channel versions of thread {self.thread_id!r}, namespace "
                f"{self.ns!r}, checkpoint {self.checkpoint.get('id')!r} are damaged "
                f"({type(exc).__name__}: {exc}); the run cannot continue from it."
            ) from exc

    def _config_for(self, checkpoint_id: str) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "thread_id": self.thread_id,
            "checkpoint_ns": self.ns,
            "checkpoint_id": checkpoint_id,
        }
        if self.checkpoint_map:
            conf["checkpoint_map"] = {**self.checkpoint_map, self.ns: checkpoint_id}
        return {"configurable": conf}

    def _new_checkpoint(
        self, step: int, source: str, *, save: bool = False, hold: bool = False
    ) -> Generator[Request, Any, None]:
        """Seal the channels into a new checkpoint and (per durability) save it; ``hold``
        (a run's input checkpoint): its put waits for its input task's writes."""
        self.step = step
        applied, self.delta_applied = self.delta_applied, []
        if self.checkpointer is None:
            # Nothing is stored: keep the run's one checkpoint record (task ids still
            # differ per step because the step is part of them).
            return
        cp = self.checkpoint
        versions = cp["channel_versions"]
        values = {}
        for key, chan in self.channels.items():
            if key not in versions:  # never written: only its initial value (e.g. [])
                continue
            value = chan.checkpoint()
            if value is not MISSING:
                values[key] = value
        # A step's updated channels are those it left holding a value: a trigger it
        # consumed, or an ephemeral channel it cleared, moved version but is not listed.
        updated = (
            sorted(k for k in self.updated if k in values) if self.updated is not None else None
        )
        if TASKS in values and self.program.untracked_channels:
            values[TASKS] = [self._stored_send(v) for v in values[TASKS]]
        counters = self._delta_checkpoint(values, cp["channel_versions"], source == "fork")
        if (self.durability == "exit" and self.checkpoint_config is None
                and self.program.delta_channels and self._stub_id is None):
            self._stub_id = create_checkpoint_id()  # sorts before the run's checkpoints
        saved: Checkpoint = {
            "v": 4,
            "id": create_checkpoint_id(),
            "ts": datetime.now(UTC).isoformat(),
            "channel_values": values,
            "channel_versions": cp["channel_versions"],
            "versions_seen": cp["versions_seen"],
            "updated_channels": updated,
        }
        # From here on the saver owns these maps; the loop goes on with copies. The inner
        # versions_seen dicts are replaced, never mutated (see apply), so a shallow copy
        # of the outer one is enough.
        new: Checkpoint = {
            **saved,
            "channel_versions": dict(saved["channel_versions"]),
            "versions_seen": dict(saved["versions_seen"]),
        }
        # parents: the checkpoint each enclosing graph stood on ({} for a root graph)
        metadata = {**self.metadata_base, "source": source, "step": step,
                    "parents": dict(self.checkpoint_map)}
        if counters:
            metadata[COUNTERS_KEY] = counters
        if self.program.delta_channels:
            metadata[APPLIED_KEY] = applied
        if self.updated is None:
            changed = dict(saved["channel_versions"])
        else:
            versions = saved["channel_versions"]
            changed = {k: versions[k] for k in self.updated if k in versions}
        parent = self.checkpoint_config
        self.parent_config = parent
        self.checkpoint = new
        self.checkpoint_config = self._config_for(new["id"])
        self._config_bases = None
        put_config = self._saver_config(parent or self._config_for(""))
        if self.branch_from is not None:
            # the first checkpoint after starting from an explicit (maybe past) checkpoint
            put_config = {**put_config, "configurable": {**put_config["configurable"],
                                                         CONFIG_KEY_BRANCH: True}}
            self.branch_from = None
        request = ("put", put_config, saved, metadata, changed)
        if self.durability == "exit" and not save:
            self._unsaved = self._merge_unsaved(request)
        elif hold and self.durability != "exit" and START in self.program.nodes:
            # its input task runs next, and its writes are kept on it: both go together
            self._held_put = request
        else:
            yield request
        if "checkpoints" in self.scope.modes or "debug" in self.scope.modes:
            self._emit_checkpoint(saved, metadata, parent)

    def _delta_checkpoint(
        self, values: dict[str, Any], versions: dict[str, Any], copy: bool = False
    ) -> dict:
        """Store the delta channels that are due whole (``_DeltaSnapshot``) in ``values``;
        the counters the new checkpoint's metadata carries for the others."""
        if not self.program.delta_channels:
            return {}
        delta = {k: self.channels[k] for k in self.program.delta_channels}
        if copy:  # a copy of a checkpoint is no superstep: its counters carry over
            counters = {k: tuple(v) for k, v in self.delta_counters.items() if k in delta}
        else:
            counters = next_counters(delta, self.delta_counters, self.updated)
        due = delta_channels_to_snapshot(delta, counters, versions)
        for key, chan in delta.items():
            if key in versions and (self.force_delta_snapshot or chan.take_overwritten()):
                due.add(key)
        if self.durability == "exit":
            # only the run's last checkpoint is saved: a snapshot due earlier is taken there
            due |= self._exit_snapshots
            self._exit_snapshots = set(due)
        for key in due:
            if self.updated is None or key not in self.updated:
                # stored at a version of its own: the current one is already stored (as
                # nothing) for an earlier checkpoint, and the saver keeps that row
                versions[key] = self._next_version()
                if self.updated is not None:
                    self.updated.add(key)
            values[key] = _DeltaSnapshot(delta[key].get())
            counters.pop(key, None)
        self.force_delta_snapshot = False
        self.delta_counters = counters
        return {k: list(v) for k, v in counters.items()}

    def _merge_unsaved(self, request: Request) -> Request:
        # With durability="exit" only the last checkpoint is written: its new_versions must
        # cover every channel that changed since the last saved one.
        if self._unsaved is None:
            return request
        changed = {**self._unsaved[4], **request[4]}
        parent = self._unsaved[1]
        metadata = request[3]
        if APPLIED_KEY in metadata:  # every step's writes were recorded on that parent
            metadata = {**metadata,
                        APPLIED_KEY: [*self._unsaved[3].get(APPLIED_KEY, ()),
                                      *metadata[APPLIED_KEY]]}
        return ("put", parent, request[2], metadata, changed)

    def put_writes(
        self, task_id_: str, writes: list[tuple[str, Any]], *, task_path: str = ""
    ) -> Request:
        """The request that saves a task's ``writes`` as pending writes of this checkpoint."""
        untracked = self.program.untracked_channels
        if untracked:
            # untracked values are never stored: not as writes, nor inside a Send's argument
            writes = [(c, self._stored_send(v)) if c == TASKS else (c, v)
                      for c, v in writes if c not in untracked] or [(NO_WRITES, None)]
        return ("put_writes", self._saver_config(self.checkpoint_config), writes, task_id_,
                task_path)

    def _stored_send(self, value: Any) -> Any:
        """A ``Send`` as a checkpoint keeps it: without the values of untracked channels
        in its (dict) argument. The running task still gets the argument as sent."""
        untracked = self.program.untracked_channels
        if (isinstance(value, Send) and isinstance(value.arg, dict)
                and not untracked.isdisjoint(value.arg)):
            arg = {k: v for k, v in value.arg.items() if k not in untracked}
            return Send(value.node, arg, timeout=value.timeout)
        return value

    def _saver_config(self, config: Any) -> Any:
        """The config a write goes to the saver with: under durability="async" it says so,
        and a saver that makes the whole run durable when its run lock is released may
        commit the write without waiting for the disk (see ``PostgresSaver``)."""
        if self.durability != "async" or config is None:
            return config
        return {**config, "configurable": {**config["configurable"],
                                           CONFIG_KEY_DURABILITY: "async"}}

    # -- planning -------------------------------------------------------------------

    def plan(self, step: int, for_execution: bool = True) -> list[Task]:
        """The tasks of the next superstep: triggered nodes, then ``Send`` packets."""
        program = self.program
        channels = self.channels
        versions = self.checkpoint["channel_versions"]
        seen_all = self.checkpoint["versions_seen"]
        checkpoint_id = self.checkpoint["id"]
        if self.updated is None:
            candidates: Any = program.nodes
        else:
            found: set[str] = set()
            index = program.trigger_to_nodes
            for channel in self.updated:
                found.update(index.get(channel, ()))
            candidates = found | program.deferred if program.deferred else found
        tasks: list[Task] = []
        managed = self.managed(step) if program.managed else None
        cid = b""  # the checkpoint id's bytes, made when a task is planned
        version = self.checkpoint.get("v", 4)
        v1 = isinstance(version, int) and version < 2  # ids of a v1 checkpoint's tasks
        for name in sorted(candidates) if len(candidates) > 1 else candidates:
            node = program.nodes[name]
            seen = seen_all.get(name) or {}
            fired = []
            for ch in node.triggers:
                # a newer version than the node saw, on a channel that holds a value
                version = versions.get(ch)
                if version is not None and ((last := seen.get(ch)) is None or version > last) \
                        and channels[ch].is_available():
                    fired.append(ch)
            if not fired:
                continue
            cid = cid or checkpoint_id_bytes(checkpoint_id)
            tid = planned_task_id(cid, self.ns, step, name, PULL, *fired, sha1=v1)
            if for_execution:
                tasks.append(self._task(tid, name, (PULL, name), node.read(channels, managed),
                                        node, tuple(fired), step, managed))
            else:  # only looked at (next, history, breakpoints): no input, no config
                tasks.append(self._task(tid, name, (PULL, name), None, node, tuple(fired),
                                        step, managed, configured=False))
        if len(tasks) > 1 and any(t.node.defer for t in tasks):
            # Deferred nodes wait until nothing else is left to run.
            tasks = [t for t in tasks if not t.node.defer] or tasks
        sends = channels.get(TASKS)
        if sends is not None and sends.is_available():
            for idx, packet in enumerate(sends.get()):
                if not isinstance(packet, Send) or packet.node not in program.nodes:
                    continue
                cid = cid or checkpoint_id_bytes(checkpoint_id)
                tid = planned_task_id(cid, self.ns, step, packet.node, PUSH, idx, sha1=v1)
                node = program.nodes[packet.node]
                pushed = self._task(tid, packet.node, (PUSH, idx, False), packet.arg, node, (),
                                    step, managed, configured=for_execution)
                pushed.timeout = packet.timeout
                tasks.append(pushed)
        return tasks

    def managed(self, step: int) -> dict[str, Any] | None:
        """Managed values (remaining steps, ...) as a task of ``step`` sees them."""
        if not self.program.managed:
            return None
        return {k: managed_value(kind, step, self.stop) for k, kind in self.program.managed.items()}

    def _task(
        self,
        tid: str,
        name: str,
        path: tuple[Any, ...],
        value: Any,
        node: Any,
        triggers: tuple[str, ...],
        step: int,
        managed: dict[str, Any] | None = None,
        *,
        configured: bool = True,
    ) -> Task:
        ns = f"{self.ns}|{name}:{tid}" if self.ns else f"{name}:{tid}"
        task = Task(tid, name, path, value, node, triggers, ns, self.scope)
        task.channels = self.channels
        task.managed = managed
        if configured:
            task.config = self._task_config(task, step)
        return task

    def _task_config(self, task: Task, step: int) -> dict[str, Any]:
        """The ``RunnableConfig`` a node (and any langchain runnable it calls) sees."""
        bases = self._config_bases
        if bases is None or bases[0] != step:
            bases = self._config_bases = (step, *self._make_config_bases(step))
        _, config_base, conf_base, meta_base = bases
        # the task's id, not the task: the task holds this config, and a reference back
        # would make every task a reference cycle, freed only by the garbage collector
        conf = {**conf_base, "checkpoint_ns": task.ns, CONFIG_KEY_TASK: task.id}
        metadata = {
            **meta_base,
            "langgraph_node": task.name,
            "langgraph_triggers": task.triggers or ("__pregel_push",),
            "langgraph_path": task.path,
            "langgraph_checkpoint_ns": task.ns,
            "checkpoint_ns": task.ns,
        }
        return {**config_base, "configurable": conf, "metadata": metadata}

    def _make_config_bases(self, step: int) -> tuple[dict[str, Any], ...]:
        """What every task config of a step shares, built once per step."""
        base = self.config
        config_base = {
            k: v
            for k, v in base.items()
            # the caller's run id/name name the graph run, not the node's
            if k not in ("configurable", "metadata", "run_id", "run_name", "callbacks")
        }
        if self.scope.callbacks is not None:
            config_base["callbacks"] = self.scope.callbacks
        conf_base = {
            **(base.get("configurable") or {}),
            CONFIG_KEY_SCOPE: self.scope,
            CONFIG_KEY_CHECKPOINTER: self.checkpointer,
            RUN_DURABILITY_KEY: self.durability,
        }
        conf_base.pop("checkpoint_id", None)
        if self.checkpointer is not None and self.checkpoint_config is not None:
            conf_base["checkpoint_map"] = {**self.checkpoint_map, self.ns: self.checkpoint["id"]}
        meta_base = {**(base.get("metadata") or {}), "langgraph_step": step}
        if self.thread_id is not None:
            meta_base["thread_id"] = self.thread_id
        return config_base, conf_base, meta_base

    # -- applying -------------------------------------------------------------------

    def apply(self, tasks: list[Task]) -> None:
        """Fold all tasks' writes into the channels at once; mark their triggers seen."""
        channels = self.channels
        versions = self.checkpoint["channel_versions"]
        seen_all = self.checkpoint["versions_seen"]
        ordered = sorted(tasks, key=_task_order) if len(tasks) > 1 else tasks
        for task in ordered:
            if task.triggers:
                seen = dict(seen_all.get(task.name) or ())
                for ch in task.triggers:
                    if ch in versions:
                        seen[ch] = versions[ch]
                seen_all[task.name] = seen
        version = self._next_version()
        updated: set[str] = set()
        for task in ordered:
            for ch in task.triggers:
                chan = channels.get(ch)
                if chan is not None and chan.consume():
                    versions[ch] = version
                    updated.add(ch)
        by_channel: dict[str, list[Any]] = {}
        for task in ordered:
            for ch, value in task.writes:
                if ch in channels:
                    by_channel.setdefault(ch, []).append(value)
        for ch, values in by_channel.items():
            if channels[ch].update(values):
                versions[ch] = version
                updated.add(ch)
        for ch in self.program.ephemeral:
            chan = channels[ch]
            if chan.value is not MISSING and ch not in by_channel and chan.update(()):
                versions[ch] = version
                updated.add(ch)
        self.updated = updated

    def apply_null_writes(self, writes: list[tuple[str, Any]]) -> None:
        """Writes that belong to no task (a ``Command`` given as input).

        Only the written channels change: pending tasks keep their triggers, so a node
        waiting to resume still runs, and sees the update.
        """
        if not writes:
            return
        grouped: dict[str, list[Any]] = {}
        for channel, value in writes:
            if channel in self.channels:
                grouped.setdefault(channel, []).append(value)
        versions = self.checkpoint["channel_versions"]
        version = self._next_version()
        for channel, values in grouped.items():
            if self.channels[channel].update(values):
                versions[channel] = version
                if self.updated is not None:
                    self.updated.add(channel)

    def should_interrupt(self, nodes: Any, tasks: list[Task]) -> bool:
        """Breakpoints fire once per change: resuming moves past the one that stopped us."""
        if not nodes:
            return False
        versions = self.checkpoint["channel_versions"]
        seen = self.checkpoint["versions_seen"].get(INTERRUPT, {})
        if not any(newer(v, seen.get(k)) for k, v in versions.items()):
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
        if self.updated is None:
            return True
        return self._wrote(self.program.output_channels) or (
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
        interrupts: dict[str, tuple[Interrupt, ...]] | None = None,
    ) -> None:
        """Stream a checkpoint (``checkpoints``/``debug`` modes) with the tasks it plans;
        ``interrupts``: those its tasks already raised (a resumed checkpoint's)."""
        next_tasks = self.plan(self.step + 1, for_execution=False)
        if self.durability == "exit" and self._unsaved is not None:
            # not saved by this run (only the last one is, at exit): streamed with no
            # parent, as LangGraph streams it
            parent = None
        if parent is not None:
            # as history shows it: a subgraph's also names its ancestors' checkpoints
            conf = parent["configurable"]
            parent = {"configurable": {
                "thread_id": conf.get("thread_id"), "checkpoint_ns": conf.get("checkpoint_ns", ""),
                "checkpoint_id": conf.get("checkpoint_id")}} if conf.get("checkpoint_id") else None
            if parent is not None and self.checkpoint_map:
                own_ns = conf.get("checkpoint_ns", self.ns)
                parent["configurable"]["checkpoint_map"] = {
                    **self.checkpoint_map, own_ns: conf.get("checkpoint_id")}
        payload = {
            "config": self.checkpoint_config,
            "parent_config": parent,
            "values": self.output(),
            "metadata": metadata,
            "next": [t.name for t in next_tasks],
            "tasks": [{"id": t.id, "name": t.name,
                       "interrupts": tuple(
                           {"id": i.id, "response_schema": i.response_schema, "value": i.value}
                           for i in (interrupts or {}).get(t.id, ())),
                       "state": self._subgraph_config(t)} for t in next_tasks],
        }
        self.emit("checkpoints", payload)
        self.emit("debug", _debug("checkpoint", self.step, payload))

    def _subgraph_config(self, task: Task) -> dict[str, Any] | None:
        """Where a subgraph task's own checkpoints live (as a snapshot's ``tasks[i].state``
        shows it), or None for a plain node."""
        return subgraph_state_config(task, self.thread_id)

    def task_started(self, task: Task) -> None:
        if task.node.hidden:
            return
        if "tasks" in self.scope.modes or "debug" in self.scope.modes:
            payload = task_start_payload(task)
            self.emit("tasks", payload)
            self.emit("debug", _debug("task", self.step + 1, payload))

    def _emit_update(self, task: Task) -> None:
        if "updates" in self.scope.modes and not task.node.hidden:
            update = {task.name: _update_payload(task, self.program, self.update_keys)}
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
        found = yield ("cache_get", list(dict.fromkeys(keys.values())))
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
            yield ("cache_set", pairs)

    def task_done(self, task: Task, siblings: int) -> list[Request]:
        """Bookkeeping when a task ends (on the driver's thread): stream it, save its writes."""
        task.done = True
        modes = self.scope.modes
        if task.error is None and not task.paused and not task.node.hidden:
            finished = (self.config.get("configurable") or {}).get(CONFIG_KEY_NODE_FINISHED)
            if finished is not None:  # the caller asked to hear of each node that ends
                finished(task.name)
            self._emit_update(task)
            if "messages" in modes:
                self._emit_node_messages(task)
        if ("tasks" in modes or "debug" in modes) and not task.node.hidden:
            payload = {
                "id": task.id,
                "name": task.name,
                "error": task.error,
                "result": task_result(task.writes, self.program.state_keys | {RETURN}) or {},
                "interrupts": [{"value": i.value, "id": i.id, "response_schema": i.response_schema}
                               for i in task.interrupts],
            }
            self.emit("tasks", payload)
            self.emit("debug", _debug("task_result", self.step + 1, payload))
        if self.program.delta_channels and task.error is None and not task.interrupts:
            task.writes = prepare_writes(self.channels, list(task.writes))
        handler = self._error_handler_task(task)
        if handler is not None:
            self.step_tasks += 1
            self.handlers.append(handler)
            self.spawned.append(handler)
        requests = self._save_task_writes(task, siblings, handler is not None)
        if self._held_put is not None:
            requests = self._with_held_put(requests)
        if handler is not None:
            # the handler's writes stand for the failure in this step (the Send stays
            # stored, so a resume starts the handler again without the failed node)
            task.writes = []
        return requests

    def take_held_put(self) -> Request | None:
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
        if (writes is not None and writes[0] == "put_writes"
                and writes[1]["configurable"].get("checkpoint_id") == held[2]["id"]):
            return [("put_with_writes", *held[1:], *writes[1:]), *requests[1:]]
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
        return self._task(tid, name, (PUSH, task.path, ERROR), packet.arg,
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
        elif (siblings > 1 or self.partial_step or self._writes_delta(task) or handled
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
        if self.durability == "exit" and self._writes_delta(task) and self._unsaved:
            # The step's own checkpoint is never saved: record the delta writes on the
            # last saved one, under ids that sort by step.
            delta = self.program.delta_channels
            exit_id = exit_delta_task_id(self.step + 1, task.id)
            self._exit_ids[task.id] = exit_id
            self._exit_writes.append((
                "put_writes", self._unsaved[1],
                [(c, v) for c, v in task.writes if c in delta],
                exit_id, _path_str(task.path),
            ))
        request = self.put_writes(task.id, writes, task_path=_path_str(task.path))
        if self.durability == "exit":
            self._exit_writes.append(request)
            return []
        return [request]

    def _writes_delta(self, task: Task) -> bool:
        delta = self.program.delta_channels
        return bool(delta) and any(c in delta for c, _ in task.writes)

    def _emit_node_messages(self, task: Task) -> None:
        """Messages a node returned that were not already streamed token by token."""
        from langchain_core.messages import BaseMessage, RemoveMessage

        seen = self.scope.message_ids
        # a message a node received in its input is not news when it (or a graph above
        # it, returning the subgraph's state) hands it back, in this run
        seen.update(_message_ids(task.input, BaseMessage))
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
                    meta = self._message_metadata(task)
                self.emit("messages", (message, meta))

    def _message_metadata(self, task: Task) -> dict[str, Any]:
        """The metadata a message a node returned streams with: the run's identifying
        configurable keys, then the node's ``langgraph_*`` keys."""
        conf = self.config.get("configurable") or {}
        meta: dict[str, Any] = {k: conf[k] for k in _MESSAGE_META_KEYS if k in conf}
        meta["ls_integration"] = "langgraph"
        source = task.config.get("metadata") or {}
        meta.update((k, v) for k, v in source.items() if k.startswith("langgraph_"))
        return meta

    # -- the run --------------------------------------------------------------------

    _exit_writes: list[Request]

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
                    saved = yield ("get_tuple", {"configurable": read_conf})
                    replay_id = None if replay.resume else target
                elif replay.before is not None:
                    saved = yield ("latest_before", {"configurable": read_conf},
                                   replay.before)
                else:
                    saved = yield ("get_tuple", {"configurable": read_conf})
            else:
                saved = yield ("get_tuple", {"configurable": read_conf})
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
            yield ("settle", self.checkpoint_config)

    def _save_exit(self) -> Generator[Request, Any, None]:
        """durability="exit": save the run's writes, then its last checkpoint (a write
        that fails leaves no checkpoint that would read it). Delta writes recorded on a
        thread that had no checkpoint yet go onto a stub: an empty checkpoint (step -2)
        saved first, as the last checkpoint's parent."""
        request, self._unsaved = self._unsaved, None
        writes, self._exit_writes = self._exit_writes, []
        self._exit_snapshots = set()
        if request is not None:
            parent = request[1]
            if not (parent or {}).get("configurable", {}).get("checkpoint_id"):
                # writes of channels the last checkpoint stores whole are not needed
                whole = {k for k, v in request[2]["channel_values"].items()
                         if isinstance(v, _DeltaSnapshot)}
                writes = [w for w in writes if w[1] is not parent
                          or any(c not in whole for c, _ in w[2])]
            if not (parent or {}).get("configurable", {}).get("checkpoint_id") and any(
                w[1] is parent for w in writes
            ):
                stub = yield from self._put_stub(parent)
                writes = [(w[0], stub, *w[2:]) if w[1] is parent else w for w in writes]
                request = ("put", stub, *request[2:])
        yield from writes
        if request is not None:
            yield request

    def _put_stub(self, parent: Any) -> Generator[Request, Any, Any]:
        stub: Checkpoint = {
            "v": 4,
            "id": self._stub_id or create_checkpoint_id(),
            "ts": datetime.now(UTC).isoformat(),
            "channel_values": {},
            "channel_versions": {},
            "versions_seen": {},
            "updated_channels": None,
        }
        metadata = {**self.metadata_base, "source": "input", "step": -2}
        if self.checkpoint_map:
            metadata["parents"] = dict(self.checkpoint_map)
        saved = yield ("put", parent, stub, metadata, {})
        return saved if saved is not None else self._config_for(stub["id"])

    def _at_head(self, saved: Any) -> Generator[Request, Any, bool]:
        """Whether ``saved`` is the thread's latest checkpoint (a run pinned to an older,
        superseded one is a fork: strict resume does not check its interrupts)."""
        if saved is None or self.branch_from is None:
            return True
        head = yield ("get_tuple", {"configurable": {"thread_id": self.thread_id,
                                                     "checkpoint_ns": self.ns}})
        return head is None or head.config["configurable"]["checkpoint_id"] == (
            saved.config["configurable"]["checkpoint_id"])

    def _enter_from_subgraph(self, conf: dict[str, Any]) -> str:
        """The root graph run with a subgraph's checkpoint config (``checkpoint_ns`` names
        the subgraph, ``checkpoint_map`` the checkpoints of the graphs above it): run the
        root from its checkpoint in that map, and let the subgraphs on the way start from
        theirs. Returns the root checkpoint id."""
        cmap = dict(conf.get("checkpoint_map") or {})
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
            self.checkpoint = saved.checkpoint
            stored = migrate_checkpoint(self.program, self.checkpoint, saved.pending_writes)
            self.checkpoint.setdefault("versions_seen", {})
            histories = yield from delta_histories(self.program, saved)
            self.channels = restore_channels(self.program, saved.checkpoint, histories)
            self.checkpoint_config = saved.config
            self.parent_config = saved.parent_config
            self.step = (saved.metadata or {}).get("step", -1)
            self.delta_counters = dict((saved.metadata or {}).get(COUNTERS_KEY) or {})
            self.updated = None
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
            self.checkpoint = {
                "v": 4,
                "id": create_checkpoint_id(),
                "ts": "",
                "channel_values": {},
                "channel_versions": {},
                "versions_seen": {},
                "updated_channels": None,
            }
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
                                      or "debug" in self.scope.modes):
                # the run streams the checkpoint it resumes, with the interrupts it answers
                self._emit_checkpoint(saved.checkpoint, saved.metadata or {},
                                      saved.parent_config, self.pending.interrupts)
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
                version = self._next_version()
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
        yield ("put_writes", self._saver_config(self.checkpoint_config), recorded, tid, "")
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
                self._exit_writes.append(("put_writes", self._unsaved[1], recorded, tid, ""))
                self.delta_applied.append(tid)
            return
        yield self.put_writes(NULL_TASK_ID, stored)
        if any(c in delta for c, _ in writes):
            self.delta_applied.append(NULL_TASK_ID)

    def _note_applied(self, tasks: list[Task]) -> None:
        """The next checkpoint applies these tasks' recorded delta writes, in task order."""
        if not self.program.delta_channels:
            return
        for task in sorted(tasks, key=_task_order):
            if self._writes_delta(task):
                self.delta_applied.append(self._exit_ids.pop(task.id, task.id))

    def _replay(self, saved: Any) -> Generator[Request, Any, None]:
        """Start replaying ``saved``: fork it, unless it is the thread's newest checkpoint
        and already a branch point (made by ``update_state`` or ``__copy__``)."""
        branch = (saved.metadata or {}).get("source") in ("update", "fork")
        before = saved.config["configurable"]["checkpoint_id"]
        if branch:
            parent = (saved.parent_config or {}).get("configurable") or {}
            before = parent.get("checkpoint_id") or before
            head = yield ("get_tuple", {"configurable": {"thread_id": self.thread_id,
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
            if self.should_interrupt(self.interrupt_before, tasks):
                self.status = "interrupt_before"
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
                for task in to_run:
                    self.task_started(task)
                yield ("run", to_run)
            if self.handlers:  # error handlers the step's failures started
                to_run = [*to_run, *self.handlers]
                tasks = [*tasks, *self.handlers]
            if cache_keys:
                yield from self._to_cache(to_run, cache_keys)
            failed = [t for t in to_run if t.error is not None]
            if failed:
                self.status = "error"
                raise failed[0].error  # type: ignore[misc]
            paused = [t for t in tasks if t.paused]
            if paused:
                self.status = "interrupted"
                self._show_finished([t for t in tasks if not t.interrupts])
                ordered = sorted(paused, key=_task_order)
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
            self._note_applied(tasks)
            self.apply(tasks)
            yield from self._new_checkpoint(step, "loop")
            if self._wrote_output():
                self._emit_values()
            if self.should_interrupt(self.interrupt_after, tasks):
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
                self.emit("values", {**_as_dict(self.output()), INTERRUPT: interrupts})
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
        for task in sorted(finished, key=_task_order):
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


def subgraph_state_config(task: Task, thread_id: Any) -> dict[str, Any] | None:
    """The config of a subgraph task's own checkpoints: under the task's namespace, or
    for a subgraph compiled with ``checkpointer=True`` under its stable one (no task ids),
    where it keeps its state from run to run. None for a plain node, and for a subgraph
    compiled with ``checkpointer=False`` (it keeps no checkpoints)."""
    sub = task.node.bound.subgraph
    if sub is None or getattr(sub, "checkpointer", None) is False:
        return None
    ns = task.ns
    if getattr(sub, "checkpointer", None) is True:
        ns = stable_ns(ns)
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}


def _message_ids(value: Any, kind: type) -> set[str]:
    """Ids of the messages in a node's input (a state dict, a model, or a message list)."""
    if isinstance(value, dict):
        items: Any = value.values()
    elif hasattr(value, "__dict__") and not isinstance(value, kind):
        items = vars(value).values()
    else:
        items = (value,)
    ids: set[str] = set()
    for item in items:
        for message in item if isinstance(item, list) else (item,):
            if isinstance(message, kind) and message.id is not None:
                ids.add(message.id)
    return ids


def check_strict_resume(resume: Any, pending: list[Interrupt]) -> None:
    """Strict resume (``CONFIG_KEY_STRICT_RESUME``): refuse, before anything is written, an
    answer that cannot go where it is meant to - a map naming an interrupt that is not
    pending (unknown, or already answered), an empty map, or one bare value while several
    interrupts wait."""
    from threadloom.engine.task import is_resume_map

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


def task_result(writes: Any, keys: Any) -> dict[str, Any] | None:
    """What a task wrote to the state, by key (several writes to one key: ``$writes``)."""
    out: dict[str, Any] = {}
    many: dict[str, list[Any]] = {}
    for channel, value in writes:
        if channel not in keys:
            continue
        if channel in many:
            many[channel].append(value)
        elif channel in out:
            many[channel] = [out[channel], value]
            out[channel] = {"$writes": many[channel]}
        else:
            out[channel] = value
    return out or None


def stable_ns(ns: str) -> str:
    """A namespace without its task ids: where a stateful subgraph keeps its history."""
    return "|".join(part.split(":", 1)[0] for part in ns.split("|"))


def _task_order(task: Task) -> tuple[Any, ...]:
    path = task.path
    if not path:
        return ("", "")
    if path[0] == PULL:
        return (path[0], path[1])
    if isinstance(path[1], int):
        return (path[0], f"{path[1]:010d}")
    return (path[0], task_path_str(path[1:]))  # an error handler's: (PUSH, failed, ERROR)


def task_path_str(path: tuple[Any, ...]) -> str:
    """A task path as a string that sorts in task order: ``"~__pregel_pull, node"``,
    ``"~__pregel_push, 0000000002"``; nested paths nest (``"~push, ~push, 0000000002,
    0000000001"``)."""
    parts = []
    for part in path:
        if isinstance(part, tuple):
            parts.append(task_path_str(part))
        elif isinstance(part, str):
            parts.append(part)
        elif isinstance(part, int) and not isinstance(part, bool):
            parts.append(f"{part:010d}")
    return f"~{', '.join(parts)}" if parts else ""


_path_str = task_path_str


def _update_payload(task: Task, program: Program, shown_keys: Any = None) -> Any:
    """A task's ``updates`` chunk: its writes by key; a list of such dicts when it wrote
    one key more than once (each repeat starts the next dict). ``shown_keys``: the run's
    ``output_keys`` (only those keys; one key named alone: its values, not dicts)."""
    writes = task.writes
    if len(writes) == 1 and writes[0][0] == RETURN:  # a called task: what it returned
        return writes[0][1]
    if isinstance(shown_keys, str):
        values = [value for ch, value in writes if ch == shown_keys]
        return (values[0] if len(values) == 1 else values) if values else None
    keys = program.state_keys if shown_keys is None else set(shown_keys)
    groups: list[dict[str, Any]] = [{}]
    for ch, value in writes:
        if ch in keys:
            if ch in groups[-1]:
                groups.append({})
            groups[-1][ch] = value
    single = program.output_channels
    if shown_keys is None and isinstance(single, str) and len(keys) == 1:
        # a graph whose state is one bare value
        shown = [g[single] if single in g else g for g in groups]
    else:
        shown = list(groups)
    if len(shown) > 1:
        return shown
    return shown[0] or None


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"__root__": value}


def _debug(kind: str, step: int, payload: Any) -> dict[str, Any]:
    return {
        "step": step,
        "timestamp": datetime.now(UTC).isoformat(),
        "type": kind,
        "payload": payload,
    }
