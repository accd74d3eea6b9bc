"""A thread's state at one checkpoint, and the four things done to it.

``ThreadState`` holds a thread's channels and the checkpoint they were read from, and
does what both a run and ``get_state``/``update_state`` do to them:

- **restore** a checkpoint tuple (``restore``; ``PendingWrites`` groups its pending
  writes by task);
- **plan** the next superstep's tasks, a pure function of the checkpoint (``plan``);
- **apply** tasks' writes through the channels, all at once (``apply``,
  ``apply_null_writes``);
- **seal** the channels into a new checkpoint, returned as the ``Put`` request that
  saves it (``seal``).

It does no I/O and knows nothing of a run's supersteps, pauses or stream: the run loop
(``threadloom.engine.loop.Loop``) extends it with those, and ``threadloom.graph.
thread_state`` uses it alone to read and edit a thread. ("Thread" is a conversation's
thread of checkpoints here, not an OS thread.)
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from threadloom.channels import MISSING, BaseChannel
from threadloom.checkpoint._stored.shape import check_write
from threadloom.checkpoint._values.history import APPLIED_KEY
from threadloom.checkpoint.base import Checkpoint, checkpoint_ts, create_checkpoint_id
from threadloom.checkpoint.serde.base import CorruptCheckpointError
from threadloom.checkpoint.serde.types import _DeltaSnapshot
from threadloom.constants import (
    CONFIG_KEY_BRANCH,
    CONFIG_KEY_CHECKPOINTER,
    CONFIG_KEY_DURABILITY,
    CONFIG_KEY_SCOPE,
    CONFIG_KEY_TASK,
    ERROR,
    INTERRUPT,
    NO_WRITES,
    NULL_TASK_ID,
    PULL,
    PUSH,
    RESUME,
    RUN_DURABILITY_KEY,
    TASKS,
)
from threadloom.engine.delta import (
    COUNTERS_KEY,
    apply_history,
    delta_channels_to_snapshot,
    history_channels,
    next_counters,
    restore_stored,
)
from threadloom.engine.program import Program
from threadloom.engine.requests import GetDeltaHistory, Put, PutWrites, Request
from threadloom.engine.scope import Scope
from threadloom.engine.task import (
    FreshChannels,
    Task,
    checkpoint_id_bytes,
    planned_task_id,
    task_id,
    task_order,
)
from threadloom.managed import managed_value
from threadloom.types import Interrupt, Send

if TYPE_CHECKING:
    from threadloom.channels.delta import DeltaChannel

__all__ = [
    "PendingWrites",
    "ThreadState",
    "delta_histories",
    "migrate_checkpoint",
    "restore_channels",
    "run_metadata",
    "stable_ns",
    "subgraph_state_config",
]

_SPECIAL = frozenset({ERROR, INTERRUPT, RESUME, NO_WRITES})
#: keys never copied into a checkpoint's metadata: the checkpoint's own address, and the
#: per-task keys a node's config carries (a subgraph's run config has them) - as
#: LangGraph leaves them out; other ``langgraph_*`` keys (``langgraph_auth_user_id``,
#: a server's ``langgraph_request_id``...) are copied like any user key
_METADATA_SKIP = frozenset({
    "thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map", "langgraph_step",
    "langgraph_node", "langgraph_triggers", "langgraph_path", "langgraph_checkpoint_ns",
})


def run_metadata(config: Mapping[str, Any]) -> dict[str, Any]:
    """User keys that go into every checkpoint's metadata (filterable in history): the
    plain values (``str`` without NUL characters, ``int``, ``float``, ``bool``) of the
    config's ``metadata``, then of its ``configurable`` where ``metadata`` did not name
    them; ``__``-prefixed keys and ``_METADATA_SKIP`` left out - as LangGraph picks them."""
    meta: dict[str, Any] = {}
    for source in (config.get("metadata"), config.get("configurable")):
        for key, value in (source or {}).items():
            if key in meta or key in _METADATA_SKIP or key.startswith("__"):
                continue
            if isinstance(value, str):
                meta[key] = value.replace("\x00", "")
            elif isinstance(value, (int, float, bool)):
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
    legacy = cast("dict[str, Any]", checkpoint)  # (keys the format no longer has)
    sends = legacy.pop("pending_sends", None)
    if sends and TASKS in program.channels:
        checkpoint["channel_values"] = {**checkpoint["channel_values"], TASKS: list(sends)}
        versions = checkpoint["channel_versions"]
        if TASKS not in versions:
            versions[TASKS] = max(versions.values()) if versions else 1
    if program.migrate is not None:
        return program.migrate(legacy, writes or ())
    return writes


def restore_channels(
    program: Program, checkpoint: Checkpoint | None, histories: Any = None
) -> dict[str, BaseChannel]:
    """The channels as ``checkpoint`` stored them; ``histories`` (from
    ``delta_histories``) rebuild the channels stored as deltas."""
    if not checkpoint:
        return program.new_channels()
    values = checkpoint["channel_values"]
    if (checkpoint.get("v", 4) < 4 and checkpoint.get("pending_sends")
            and TASKS not in values):
        # a checkpoint from before format 4 kept its Send packets beside the channels
        values = {**values, TASKS: list(checkpoint["pending_sends"])}  # type: ignore[typeddict-item]
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
    got = yield GetDeltaHistory(tup.config, wanted)
    return dict(got or {})


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


def stable_ns(ns: str) -> str:
    """A namespace without its task ids: where a stateful subgraph keeps its history."""
    return "|".join(part.split(":", 1)[0] for part in ns.split("|"))


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
        books: tuple[dict[str, Any], ...] = (
            self.succeeded, self.interrupts, self.resumes, self.errors)
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


class ThreadState:
    """A thread's channels at one checkpoint (of one namespace): restored from a saved
    checkpoint, planned, applied to and sealed into the next one.

    ``checkpointer``: the saver whose version scheme the channel versions follow (None:
    nothing is stored, versions count up from 1 and ``seal`` makes no checkpoint).
    ``durability``: the run's, as the saver is told it (``saver_config``).
    """

    def __init__(
        self,
        program: Program,
        config: dict[str, Any],
        scope: Scope,
        *,
        checkpointer: Any,
        durability: str,
        ns: str | None = None,
    ) -> None:
        self.program = program
        self.config = config
        self.scope = scope
        self.checkpointer = checkpointer
        self.durability = durability
        conf = config.get("configurable") or {}
        self.thread_id: Any = conf.get("thread_id")
        self.ns: str = ns if ns is not None else conf.get("checkpoint_ns", "")
        # the checkpoints of the graphs above (a subgraph's), by namespace
        self.checkpoint_map: dict[str, str] = dict(conf.get("checkpoint_map") or {})
        self.channels: dict[str, BaseChannel] = {}
        self.checkpoint: Checkpoint = None  # type: ignore[assignment]
        self.checkpoint_config: dict[str, Any] | None = None
        self.parent_config: dict[str, Any] | None = None
        self.metadata_base = run_metadata(config)
        self.step = -2
        # the last step a run may take (what managed values such as remaining_steps count)
        self.stop = 0
        # the channels the last apply changed (None: unknown, as after a restore)
        self.updated: set[str] | None = None
        # until the first apply (``updated`` unknown), as LangGraph plans a restored
        # checkpoint: by name the nodes triggered, if it records its updated channels
        # (also when the run forks it); if it records none (one update_state made, a
        # fork, an older format's), every node in the order they were added
        self.plan_by_name = True
        # whether every ephemeral channel that holds a value is in ``updated`` (true from
        # the first apply on: then only those need clearing at the next one)
        self._ephemeral_in_updated = False
        # the checkpoint a run was told to start from (checkpoint_id): its first put branches
        self.branch_from: str | None = None
        # (step, the configurable every task of the step shares): see task_config
        self._config_bases: tuple[int, dict[str, Any]] | None = None
        self._static_config_bases: tuple[dict[str, Any], ...] | None = None
        self._cid: tuple[Any, bytes] = (None, b"")  # (checkpoint id, its bytes)
        self._int_version = 0
        # Delta channels (see threadloom.engine.delta): counters since each one's last
        # snapshot, as the last checkpoint's metadata holds them; force a snapshot of
        # every delta channel at the next checkpoint (a thread's first update_state).
        self.delta_counters: dict[str, Any] = {}
        self.force_delta_snapshot = False
        # the task ids of the parent's recorded writes the next checkpoint applies, in
        # order (its metadata's APPLIED_KEY, see threadloom.checkpoint._values.history)
        self.delta_applied: list[str] = []
        # the ids tasks' delta writes were recorded under when not their own (a run under
        # durability="exit" records them on its last saved checkpoint, see Loop)
        self.recorded_ids: dict[str, str] = {}
        # durability="exit": delta channels whose snapshot fell due at a checkpoint that
        # is never saved; every later checkpoint of the run stores them whole
        self.exit_snapshots: set[str] = set()

    # -- restore ----------------------------------------------------------------------

    def restore(self, tup: Any, histories: Any = None, *, copy: bool = False) -> Any:
        """Take the checkpoint tuple ``tup`` as the current state (``histories``, from
        ``delta_histories``, rebuild its delta channels); return its pending writes as
        this program names the channels (see ``migrate_checkpoint``). ``copy``: the
        checkpoint's version maps are replaced by copies before anything changes them, so
        maps the saver may share elsewhere stay as read (a run owns the maps of the tuple
        it read and changes them in place)."""
        checkpoint = self.checkpoint = tup.checkpoint
        stored = migrate_checkpoint(self.program, checkpoint, tup.pending_writes)
        if copy:
            checkpoint["versions_seen"] = {
                k: dict(v) for k, v in checkpoint.get("versions_seen", {}).items()
            }
            checkpoint["channel_versions"] = dict(checkpoint["channel_versions"])
        else:
            checkpoint.setdefault("versions_seen", {})
        self.channels = restore_channels(self.program, checkpoint, histories)
        self.checkpoint_config = tup.config
        self.parent_config = tup.parent_config
        metadata = tup.metadata or {}
        self.step = metadata.get("step", -1)
        self.delta_counters = dict(metadata.get(COUNTERS_KEY) or {})
        self.updated = None
        self.plan_by_name = bool(checkpoint.get("updated_channels"))
        self._ephemeral_in_updated = False
        return stored

    # -- versions and configs -------------------------------------------------------

    def next_version(self) -> Any:
        """The version the next changed channels take."""
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

    def config_for(self, checkpoint_id: str) -> dict[str, Any]:
        """The config naming checkpoint ``checkpoint_id`` of this thread and namespace."""
        conf: dict[str, Any] = {
            "thread_id": self.thread_id,
            "checkpoint_ns": self.ns,
            "checkpoint_id": checkpoint_id,
        }
        if self.checkpoint_map:
            conf["checkpoint_map"] = {**self.checkpoint_map, self.ns: checkpoint_id}
        return {"configurable": conf}

    def saver_config(self, config: Any) -> Any:
        """The config a write goes to the saver with: under durability="async" it says so,
        and a saver that makes the whole run durable when its run lock is released may
        commit the write without waiting for the disk (see ``PostgresSaver``)."""
        if self.durability != "async" or config is None:
            return config
        return {**config, "configurable": {**config["configurable"],
                                           CONFIG_KEY_DURABILITY: "async"}}

    # -- seal -------------------------------------------------------------------------

    def seal(self, step: int, source: str, *, record_updated: bool = True) -> Put | None:
        """Seal the channels into a new checkpoint of ``step`` (``source``: "input",
        "loop", "update" or "fork"), which becomes the current one; return the request
        that saves it (None without a checkpointer: nothing is stored). ``record_updated``
        False: the checkpoint records no ``updated_channels`` (as LangGraph's
        ``update_state`` leaves them), so a run from it plans every node."""
        self.step = step
        applied, self.delta_applied = self.delta_applied, []
        if self.checkpointer is None:
            # Nothing is stored: keep the run's one checkpoint record (task ids still
            # differ per step because the step is part of them).
            return None
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
            sorted(self.updated.intersection(values))
            if self.updated is not None and record_updated else None
        )
        if TASKS in values and self.program.untracked_channels:
            values[TASKS] = [self.stored_send(v) for v in values[TASKS]]
        counters = self._delta_checkpoint(values, cp["channel_versions"], source == "fork")
        saved: Checkpoint = {
            "v": 4,
            "id": create_checkpoint_id(),
            "ts": checkpoint_ts(),
            "channel_values": values,
            "channel_versions": cp["channel_versions"],
            "versions_seen": cp["versions_seen"],
            "updated_channels": updated,
        }
        # From here on the saver owns these maps; the state goes on with copies. The inner
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
        self.checkpoint_config = self.config_for(new["id"])
        self._config_bases = None
        put_config = self.saver_config(parent or self.config_for(""))
        if self.branch_from is not None:
            # the first checkpoint after starting from an explicit (maybe past) checkpoint
            put_config = {**put_config, "configurable": {**put_config["configurable"],
                                                         CONFIG_KEY_BRANCH: True}}
            self.branch_from = None
        return Put(put_config, saved, metadata, changed)

    def _delta_checkpoint(
        self, values: dict[str, Any], versions: dict[str, Any], copy: bool = False
    ) -> dict[str, list[Any]]:
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
            if key in versions and (self.force_delta_snapshot
                                    or cast("DeltaChannel", chan).take_overwritten()):
                due.add(key)
        if self.durability == "exit":
            # only the run's last checkpoint is saved: a snapshot due earlier is taken there
            due |= self.exit_snapshots
            self.exit_snapshots = set(due)
        for key in due:
            if self.updated is None or key not in self.updated:
                # stored at a version of its own: the current one is already stored (as
                # nothing) for an earlier checkpoint, and the saver keeps that row
                versions[key] = self.next_version()
                if self.updated is not None:
                    self.updated.add(key)
            values[key] = _DeltaSnapshot(delta[key].get())
            counters.pop(key, None)
        self.force_delta_snapshot = False
        self.delta_counters = counters
        return {k: list(v) for k, v in counters.items()}

    def put_writes(
        self, task_id_: str, writes: list[tuple[str, Any]], *, task_path: str = ""
    ) -> PutWrites:
        """The request that saves a task's ``writes`` as pending writes of this checkpoint."""
        untracked = self.program.untracked_channels
        if untracked:
            # untracked values are never stored: not as writes, nor inside a Send's argument
            writes = [(c, self.stored_send(v)) if c == TASKS else (c, v)
                      for c, v in writes if c not in untracked] or [(NO_WRITES, None)]
        return PutWrites(self.saver_config(self.checkpoint_config), writes, task_id_, task_path)

    def stored_send(self, value: Any) -> Any:
        """A ``Send`` as a checkpoint keeps it: without the values of untracked channels
        in its (dict) argument. The running task still gets the argument as sent."""
        untracked = self.program.untracked_channels
        if (isinstance(value, Send) and isinstance(value.arg, dict)
                and not untracked.isdisjoint(value.arg)):
            arg = {k: v for k, v in value.arg.items() if k not in untracked}
            return Send(value.node, arg, timeout=value.timeout)
        return value

    # -- plan -------------------------------------------------------------------------

    def plan(self, step: int, for_execution: bool = True) -> list[Task]:
        """The tasks of the next superstep, as LangGraph plans them: ``Send`` packets in the
        order they were sent, then triggered nodes."""
        program = self.program
        channels = self.channels
        # (versions of one saver compare with each other; their type is the saver's)
        versions: dict[str, Any] = self.checkpoint["channel_versions"]
        seen_all: dict[str, dict[str, Any]] = self.checkpoint["versions_seen"]
        checkpoint_id = self.checkpoint["id"]
        if self.updated is None:
            # (a restored checkpoint: see plan_by_name)
            candidates: Any = program.node_order if self.plan_by_name else program.node_rank
        else:
            found: set[str] = set()
            index = program.trigger_to_nodes
            for channel in self.updated:
                found.update(index.get(channel, ()))
            candidates = found | program.deferred if program.deferred else found
        tasks: list[Task] = []
        managed = self.managed(step) if program.managed else None
        # the checkpoint id's bytes, made when a task is first planned from it
        cid = self._cid[1] if self._cid[0] == checkpoint_id else b""
        version = self.checkpoint.get("v", 4)
        v1 = isinstance(version, int) and version < 2  # ids of a v1 checkpoint's tasks
        for name in (sorted(candidates) if len(candidates) > 1 and candidates is not
                     program.node_order and candidates is not program.node_rank
                     else candidates):
            node = program.nodes[name]
            seen = seen_all.get(name) or {}
            fired = []
            for ch in node.triggers:
                # a newer version than the node saw, on a channel that holds a value
                current = versions.get(ch)
                if current is not None and ((last := seen.get(ch)) is None or current > last) \
                        and channels[ch].is_available():
                    fired.append(ch)
            if not fired:
                continue
            if not cid:
                cid = checkpoint_id_bytes(checkpoint_id)
                self._cid = (checkpoint_id, cid)
            tid = planned_task_id(cid, self.ns, step, name, PULL, *fired, sha1=v1)
            if for_execution:
                tasks.append(self.new_task(tid, name, (PULL, name), node.read(channels, managed),
                                           node, tuple(fired), step, managed))
            else:  # only looked at (next, history, breakpoints): no input, no config
                tasks.append(self.new_task(tid, name, (PULL, name), None, node, tuple(fired),
                                           step, managed, configured=False))
        if len(tasks) > 1 and any(t.node.defer for t in tasks):
            # Deferred nodes wait until nothing else is left to run.
            tasks = [t for t in tasks if not t.node.defer] or tasks
        sends = channels.get(TASKS)
        if sends is not None and sends.is_available():
            pulled, tasks = tasks, []
            for idx, packet in enumerate(sends.get()):
                if not isinstance(packet, Send) or packet.node not in program.nodes:
                    continue
                cid = cid or checkpoint_id_bytes(checkpoint_id)
                tid = planned_task_id(cid, self.ns, step, packet.node, PUSH, idx, sha1=v1)
                node = program.nodes[packet.node]
                pushed = self.new_task(tid, packet.node, (PUSH, idx, False), packet.arg, node,
                                       (), step, managed, configured=for_execution)
                pushed.timeout = packet.timeout
                tasks.append(pushed)
            tasks.extend(pulled)
        return tasks

    def managed(self, step: int) -> dict[str, Any] | None:
        """Managed values (remaining steps, ...) as a task of ``step`` sees them."""
        if not self.program.managed:
            return None
        return {k: managed_value(kind, step, self.stop) for k, kind in self.program.managed.items()}

    def new_task(
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
        """A task of ``step`` that runs ``node`` on ``value``, in this state's namespace
        (``configured``: with its node config; a task only looked at has none)."""
        ns = f"{self.ns}|{name}:{tid}" if self.ns else f"{name}:{tid}"
        task = Task(tid, name, path, value, node, triggers, ns, self.scope)
        task.channels = self.channels
        task.managed = managed
        if configured:
            task.config = self.task_config(task, step)
        return task

    def task_config(self, task: Task, step: int) -> dict[str, Any]:
        """The ``RunnableConfig`` a node (and any langchain runnable it calls) sees."""
        static = self._static_config_bases
        if static is None:
            static = self._static_config_bases = self._run_config_bases()
        config_base, conf_base, meta_base = static
        if self.checkpointer is not None and self.checkpoint_config is not None:
            # what every task of the step shares: the checkpoint it was planned from
            bases = self._config_bases
            if bases is None or bases[0] != step:
                bases = self._config_bases = (step, {
                    **conf_base,
                    "checkpoint_map": {**self.checkpoint_map, self.ns: self.checkpoint["id"]},
                })
            conf_base = bases[1]
        # the task's id, not the task: the task holds this config, and a reference back
        # would make every task a reference cycle, freed only by the garbage collector
        conf = {**conf_base, "checkpoint_ns": task.ns, CONFIG_KEY_TASK: task.id}
        metadata = {
            **meta_base,
            "langgraph_step": step,
            "langgraph_node": task.name,
            "langgraph_triggers": task.triggers or ("__pregel_push",),
            "langgraph_path": task.path,
            "langgraph_checkpoint_ns": task.ns,
            "checkpoint_ns": task.ns,
        }
        return {**config_base, "configurable": conf, "metadata": metadata}

    def _run_config_bases(self) -> tuple[dict[str, Any], ...]:
        """What every task config of the run shares (the caller's config, the run's scope,
        saver and durability, its metadata with the thread id), made once, at the run's
        first task."""
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
        meta_base = dict(base.get("metadata") or {})
        if self.thread_id is not None:
            meta_base["thread_id"] = self.thread_id
        return config_base, conf_base, meta_base

    # -- apply ------------------------------------------------------------------------

    def apply(self, tasks: list[Task]) -> None:
        """Fold all tasks' writes into the channels at once; mark their triggers seen."""
        channels = self.channels
        versions = self.checkpoint["channel_versions"]
        seen_all = self.checkpoint["versions_seen"]
        ordered = sorted(tasks, key=task_order) if len(tasks) > 1 else tasks
        for task in ordered:
            if task.triggers:
                seen = dict(seen_all.get(task.name) or ())
                for ch in task.triggers:
                    if ch in versions:
                        seen[ch] = versions[ch]
                seen_all[task.name] = seen
        if self.checkpointer is None:  # (next_version, without the call)
            self._int_version += 1
            version = self._int_version
        else:
            version = self.next_version()
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
        fresh = ordered[0].fresh if len(ordered) == 1 else None
        for ch, values in by_channel.items():
            if fresh is not None and _fresh_fits(fresh, ch, values, channels, ordered[0]):
                channels[ch] = fresh.channels[ch]  # its routing functions' copy, updated
                changed = fresh.changed[ch]  # with the same values (see FreshChannels)
            else:
                changed = channels[ch].update(values)
            if changed:
                versions[ch] = version
                updated.add(ch)
        ephemeral: Any = self.program.ephemeral
        prior = self.updated
        if self._ephemeral_in_updated and prior is not None and len(prior) < len(ephemeral):
            # only those written since the last apply can hold a value (O(writes), not
            # O(channels), a step)
            ephemeral = self.program.ephemeral_set.intersection(prior)
        for ch in ephemeral:
            chan = channels[ch]
            if chan.value is not MISSING and ch not in by_channel and chan.update(()):
                versions[ch] = version
                updated.add(ch)
        self.updated = updated
        self._ephemeral_in_updated = True

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
        version = self.next_version()
        for channel, values in grouped.items():
            if self.channels[channel].update(values):
                versions[channel] = version
                if self.updated is not None:
                    self.updated.add(channel)

    def note_applied(self, tasks: list[Task]) -> None:
        """The next checkpoint applies these tasks' recorded delta writes, in task order."""
        if not self.program.delta_channels:
            return
        for task in sorted(tasks, key=task_order):
            if self.writes_delta(task):
                self.delta_applied.append(self.recorded_ids.pop(task.id, task.id))

    def writes_delta(self, task: Task) -> bool:
        """Whether ``task`` wrote a delta channel (its writes are then that channel's
        record, see ``threadloom.engine.delta``)."""
        delta = self.program.delta_channels
        return bool(delta) and any(c in delta for c, _ in task.writes)


def _fresh_fits(
    fresh: FreshChannels, channel: str, values: list[Any], channels: dict[str, Any], task: Task
) -> bool:
    """Whether ``fresh`` holds ``channel`` updated from the channel now there with the
    very ``values`` the step applies (the same objects, in order), and the task did not
    consume the channel as a trigger."""
    grouped = fresh.grouped.get(channel)
    return (
        grouped is not None
        and fresh.bases[channel] is channels[channel]
        and len(grouped) == len(values)
        and all(a is b for a, b in zip(grouped, values, strict=True))
        and channel not in task.triggers
    )
