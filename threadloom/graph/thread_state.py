"""Reading and editing a thread's state: ``get_state``, history and ``update_state``.

Each operation is a generator that yields typed requests (``threadloom.engine.
requests``), like the run loop, so the sync and async methods of ``CompiledStateGraph``
share one implementation; the thread state itself (restore, plan, apply, seal) is the
engine's ``ThreadState``, the one the run loop extends. One request is not the saver's:
``NodeWrites`` asks for a node's writes for an update, so the async driver can await an
async routing function.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from threadloom._schema import ROOT
from threadloom.checkpoint.base import empty_checkpoint
from threadloom.constants import COPY, END, INPUT, NULL_TASK_ID, PULL, START
from threadloom.engine.delta import prepare_writes
from threadloom.engine.payloads import task_result
from threadloom.engine.program import snapshot_order
from threadloom.engine.requests import (
    GetTuple,
    NodeWrites,
    PutWrites,
    Request,
    aperform,
    perform,
)
from threadloom.engine.scope import Scope
from threadloom.engine.task import ResumeBox, Task
from threadloom.engine.thread import (
    PendingWrites,
    ThreadState,
    delta_histories,
    run_metadata,
    subgraph_state_config,
)
from threadloom.errors import InvalidUpdateError
from threadloom.types import Interrupt, PregelTask, StateSnapshot

if TYPE_CHECKING:
    from threadloom.engine.loop import Loop
    from threadloom.graph.compiled import CompiledStateGraph

__all__ = [
    "ChildIndex",
    "RunHead",
    "Update",
    "delta_histories",
    "get_state",
    "history_config",
    "run_async",
    "run_head",
    "run_sync",
    "snapshot",
    "update_state",
]


def run_sync(gen: Generator[Request, Any, Any], saver: Any) -> Any:
    """Drive ``gen`` to its end with plain calls on ``saver``; return what it returns."""
    reply = None
    try:
        while True:
            reply = perform(saver, gen.send(reply))
    except StopIteration as stop:
        return stop.value


async def run_async(gen: Generator[Request, Any, Any], saver: Any) -> Any:
    """Drive ``gen`` to its end on ``saver``'s async methods; return what it returns."""
    reply = None
    try:
        while True:
            reply = await aperform(saver, gen.send(reply))
    except StopIteration as stop:
        return stop.value


def _read_config(config: dict[str, Any]) -> dict[str, Any]:
    conf = config.get("configurable") or {}
    if "thread_id" not in conf:
        raise ValueError(
            "Checkpointer requires one or more of the following 'configurable' keys: "
            "thread_id, checkpoint_ns, checkpoint_id. Pass {'configurable': {'thread_id': ...}}."
        )
    out = {"thread_id": str(conf["thread_id"]), "checkpoint_ns": conf.get("checkpoint_ns", "")}
    if conf.get("checkpoint_id"):
        out["checkpoint_id"] = conf["checkpoint_id"]
    return {"configurable": out}


def history_config(config: dict[str, Any]) -> dict[str, Any]:
    read = _read_config(config)
    read["configurable"].pop("checkpoint_id", None)
    return read


def _thread_state(
    graph: CompiledStateGraph, saver: Any, config: dict[str, Any], durability: str = "sync"
) -> ThreadState:
    """The state of the thread ``config`` names, as ``graph`` reads it (empty until
    restored)."""
    scope = Scope(modes=frozenset(), sink=None, resume_box=ResumeBox(), store=graph.store,
                  context=None, checkpointer=saver, ns="", nested=False)
    return ThreadState(graph.program, config, scope, checkpointer=saver, durability=durability)


def _restore(state: ThreadState, tup: Any, histories: Any = None) -> PendingWrites:
    """Restore ``tup`` into ``state`` (on copies of its version maps); return its
    pending writes (both as this graph names the channels)."""
    return PendingWrites(state.restore(tup, histories, copy=True), tup.config)


def snapshot(
    graph: CompiledStateGraph, tup: Any, *, live: bool, histories: Any = None,
    child: Any = None,
) -> StateSnapshot:
    """Turn a checkpoint tuple into a ``StateSnapshot``.

    ``live`` (the thread's head) shows the writes of tasks that already finished in the
    pending step and lists only the tasks still to run; a past checkpoint is shown as
    it was recorded, with every task and what it wrote. ``child`` (the checkpoint that
    step made, when known) gives the result of a task that ran alone in its step, whose
    writes went straight into that checkpoint.
    """
    conf = tup.config["configurable"]
    state = _thread_state(graph, None, {"configurable": {
        "thread_id": conf["thread_id"], "checkpoint_ns": conf["checkpoint_ns"]}})
    pending = _restore(state, tup, histories)
    state.apply_null_writes(pending.null)
    # shown as LangGraph lists them: the Send packets' tasks first, then triggered nodes
    # in the order they were added
    tasks = snapshot_order(graph.program, state.plan(state.step + 1, for_execution=False))
    pending.adopt_legacy_ids(tasks, state.checkpoint["id"], state.ns, state.step + 1)
    finished = [t for t in tasks if t.id in pending.succeeded]
    if live and finished:
        for t in finished:
            t.writes = pending.succeeded[t.id]
        state.apply(finished)
    alone = None
    # (formats before v4 - LangGraph's - stored every task's writes: none to derive)
    if (child is not None and len(tasks) == 1 and tasks[0].id not in pending.succeeded
            and tasks[0].id not in pending.errors and tup.checkpoint.get("v", 4) >= 4
            and _is_child(child, tup)):
        alone = _result_from_child(graph, state, child)
    views = []
    for t in tasks:
        # the head shows only questions still open; a record (by id) every one asked
        answered = live and t.id in pending.succeeded
        interrupts = pending.interrupts.get(t.id, ()) if not answered else ()
        error = pending.errors.get(t.id)
        result = None
        if t.id in pending.succeeded:
            result = task_result(pending.succeeded[t.id], graph.program.state_keys)
        elif alone is not None:
            result = alone
        if isinstance(result, dict) and result.keys() == {ROOT}:
            result = result[ROOT]  # a graph whose state is one value: the value written
        sub_state = subgraph_state_config(t, conf["thread_id"])
        views.append(PregelTask(t.id, t.name, t.path, error, tuple(interrupts), sub_state,
                                result))
    shown = [v for v in views if not (live and v.id in pending.succeeded)]
    # A subgraph's checkpoint (and its parent) also names its ancestors' checkpoints,
    # as LangGraph's do.
    parents = (tup.metadata or {}).get("parents")
    config = _with_checkpoint_map(tup.config, parents)
    parent_config = _with_checkpoint_map(tup.parent_config, parents)
    return StateSnapshot(
        values=graph._snapshot_values(state.channels),
        next=tuple(v.name for v in shown),
        config=config,
        metadata=tup.metadata,
        created_at=tup.checkpoint.get("ts"),
        parent_config=parent_config,
        tasks=tuple(views),
        interrupts=_pending_interrupts(shown, pending, {t.id for t in tasks}),
    )


class RunHead(NamedTuple):
    """What ``get_state`` shows of a thread's head, in the parts a caller that only
    records a thread's status needs: ``values``, the names of the tasks ``next`` to run,
    the questions pending (``asking``: by task id, in the snapshot's task order), every
    pending interrupt once (``interrupts``), and whether a checkpoint exists at all."""

    values: Any
    next: tuple[str, ...]
    asking: dict[str, tuple[Interrupt, ...]]
    interrupts: tuple[Interrupt, ...]
    saved: bool

    @classmethod
    def of(cls, snap: StateSnapshot) -> RunHead:
        """The parts of a ``StateSnapshot`` read from the saver."""
        saved = bool((snap.config.get("configurable") or {}).get("checkpoint_id"))
        asking = {t.id: tuple(t.interrupts) for t in snap.tasks if t.interrupts}
        return cls(snap.values, tuple(snap.next), asking, tuple(snap.interrupts), saved)


def run_head(graph: CompiledStateGraph, loop: Loop) -> RunHead | None:
    """The thread's head as ``get_state`` would read it right after the run of ``loop``
    ended (``CONFIG_KEY_RUN_ENDED``), taken from the run's own state instead of read
    back: the same channels, the same tasks, as ``snapshot`` shows a head. None where
    the two could differ, for the caller to read the state instead: a run that failed or
    stopped after a step (``interrupt_after``), a nested run, a run started from a given
    checkpoint, tasks called from tasks,
    a task paused without a question (a subgraph's breakpoint), channels the saver does
    not keep as they are (untracked ones) or that a step clears (an ephemeral state key)."""
    program = graph.program
    if (loop.checkpointer is None or loop.checkpoint_config is None or loop.scope.nested
            or loop.call_interrupts or program.untracked_channels
            or not program.ephemeral_set.isdisjoint(program.state_keys)
            # started from a past checkpoint: with nothing to run it saved nothing, and
            # the head is still the thread's newest, not the one it started from
            or (loop.config.get("configurable") or {}).get("checkpoint_id")):
        return None
    if loop.status == "done":
        return RunHead(graph._snapshot_values(loop.channels), (), {}, (), True)
    tasks = loop.paused_step
    if tasks is None or loop.status not in ("interrupted", "interrupt_before"):
        return None
    # as snapshot lists them: the Send packets' tasks first, then triggered nodes in the
    # order they were added
    ordered = snapshot_order(program, tasks)
    if loop.status == "interrupt_before":
        if loop.pending.succeeded or loop.pending.errors:
            return None  # (writes from before the pause: the head shows them)
        return RunHead(graph._snapshot_values(loop.channels),
                       tuple(t.name for t in ordered), {}, (), True)
    waiting = [t for t in ordered if t.paused]
    ids = {t.id for t in ordered}
    if (any(not t.interrupts for t in waiting)
            or any(not t.paused and not t.done for t in ordered)
            or any(tid not in ids for tid in loop.pending.interrupts)):
        return None
    asking = {t.id: tuple(t.interrupts) for t in waiting}
    found = {i.id: i for t in waiting for i in t.interrupts}
    channels = loop.view if loop.view is not None else loop.channels
    return RunHead(graph._snapshot_values(channels), tuple(t.name for t in waiting), asking,
                   tuple(found.values()), True)


def _with_checkpoint_map(config: Any, parents: dict[str, str] | None) -> Any:
    """``config`` of a subgraph's checkpoint with its ``checkpoint_map`` (the ancestors'
    checkpoints ``parents``, then its own); as it is for a root checkpoint or none."""
    conf = (config or {}).get("configurable") or {}
    if not parents or not conf.get("checkpoint_ns"):
        return config
    return {"configurable": {**conf, "checkpoint_map": {
        **parents, conf["checkpoint_ns"]: conf.get("checkpoint_id")}}}


def _is_child(child: Any, tup: Any) -> bool:
    """Whether ``child`` is the checkpoint ``tup``'s step made (not a later one saved
    after unsaved steps, as durability="exit" leaves them)."""
    parent = (child.parent_config or {}).get("configurable") or {}
    if parent.get("checkpoint_id") != tup.config["configurable"]["checkpoint_id"]:
        return False
    step = (tup.metadata or {}).get("step")
    child_step = (child.metadata or {}).get("step")
    return step is None or child_step is None or child_step == step + 1


def _result_from_child(graph: CompiledStateGraph, state: ThreadState, child: Any) -> Any:
    """What a task that ran alone in its step wrote to the state, read back from the
    checkpoint its step made: for each state key that changed, the write that turns the
    value before into the value after (a plain value, or what a list reducer appended),
    checked by applying it. A key whose write cannot be told is left out."""
    program = graph.program
    after = child.checkpoint.get("channel_values") or {}
    updated = child.checkpoint.get("updated_channels")
    if updated is None:  # written without the list: the channels whose version moved
        was = state.checkpoint.get("channel_versions") or {}
        updated = [k for k, v in (child.checkpoint.get("channel_versions") or {}).items()
                   if was.get(k) != v]
    # a delta channel's checkpoint value is not the whole value: left out
    keys = [k for k in updated if k in program.state_keys and k not in program.delta_channels]
    result: dict[str, Any] = {}
    for key in keys:
        if key not in after or key not in state.channels:
            continue
        new = program.channels[key].from_checkpoint(after[key])
        if not new.is_available():
            continue
        value = new.get()
        before = state.channels[key]
        old = before.get() if before.is_available() else None
        candidates = [value]
        # ``value`` with ``old`` as its prefix (compared once, in ``_added``): a trial that
        # keeps those very items need only be compared past them
        prefix = 0
        if isinstance(value, list) and isinstance(old, list):
            if value[:len(old)] == old:
                prefix = len(old)
                candidates.insert(0, value[prefix:])
            else:
                candidates.insert(0, _added(old, value))
        for write in candidates:
            base = before.checkpoint()
            # a reducer may change its first argument in place: give it a copy
            trial = program.channels[key].from_checkpoint(
                list(base) if isinstance(base, list) else base)
            try:
                trial.update([write])
            except Exception:  # noqa: BLE001 - a write this channel refuses is not it
                continue
            if trial.is_available() and _same_value(trial.get(), value, old, prefix):
                result[key] = write
                break
    return result or None


def _same_value(got: Any, value: Any, old: Any, prefix: int) -> bool:
    """``got == value``, where ``value[:prefix] == old[:prefix]`` is known: the items of
    ``got`` that are ``old``'s very objects are not compared again (pydantic messages
    compare field by field)."""
    if (prefix and type(got) is list and len(got) == len(value)
            and all(a is b for a, b in zip(got[:prefix], old, strict=True))):
        return bool(got[prefix:] == value[prefix:])
    return bool(got == value)


def _added(old: list[Any], new: list[Any]) -> list[Any]:
    """The items of ``new`` that are not (one for one) in ``old``, in ``new``'s order."""
    if new[:len(old)] == old:
        return new[len(old):]
    remaining = list(old)
    added = []
    for item in new:
        if item in remaining:
            remaining.remove(item)
        else:
            added.append(item)
    return added


def _pending_interrupts(shown: list[PregelTask], pending: PendingWrites,
                        planned: set[str]) -> tuple[Any, ...]:
    """The interrupts still waiting for an answer: those of the shown tasks, then those of
    tasks called from them (``@task``) that paused too, each interrupt once."""
    found = {i.id: i for v in shown for i in v.interrupts}
    if shown:
        for tid, interrupts in pending.interrupts.items():
            if tid not in planned and tid not in pending.succeeded:
                for i in interrupts:
                    found.setdefault(i.id, i)
    return tuple(found.values())


def get_state(
    graph: CompiledStateGraph, saver: Any, config: dict[str, Any], subgraphs: bool
) -> Generator[Request, Any, StateSnapshot]:
    read = _read_config(config)
    tup = yield GetTuple(read)
    if tup is None:
        return StateSnapshot(values={}, next=(), config=config, metadata=None,
                             created_at=None, parent_config=None, tasks=(), interrupts=())
    histories = yield from delta_histories(graph.program, tup)
    snap = snapshot(graph, tup, live="checkpoint_id" not in read["configurable"],
                    histories=histories)
    if not subgraphs:
        return snap
    tasks = []
    for task in snap.tasks:
        node = graph.program.nodes.get(task.name)
        child = node.bound.subgraph if node is not None else None
        if task.state is not None and child is not None and getattr(
            child, "_threadloom_graph", False
        ):
            child_config = child._own_ns_config(task.state)
            child_snap = yield from get_state(child, saver, child_config, True)
            task = task._replace(state=child_snap)
        tasks.append(task)
    return snap._replace(tasks=tuple(tasks))


class ChildIndex:
    """Walks a thread's history newest first and finds, for each checkpoint, the one its
    step produced (the oldest ``loop``/``update`` child: later children are forks)."""

    def __init__(self) -> None:
        self.children: dict[str, Any] = {}

    def see(self, tup: Any) -> Any:
        """Record ``tup`` as a child of its parent; return ``tup``'s own child, if seen."""
        parent = tup.parent_config
        source = (tup.metadata or {}).get("source")
        if parent is not None and source in ("loop", "update"):
            pid = parent["configurable"].get("checkpoint_id")
            if pid:
                self.children[pid] = tup
        return self.children.pop(tup.config["configurable"]["checkpoint_id"], None)


def _last_writer(state: ThreadState, graph: CompiledStateGraph) -> str:
    seen = state.checkpoint["versions_seen"]
    # a StateGraph's input is a node (START) that may be the last writer; a Pregel
    # graph's input is written to its channels by no node
    graph_input = getattr(graph, "_input_is_node", True)
    latest: list[tuple[Any, str]] = []
    for name, versions in seen.items():
        if (name in graph.builder.nodes or (name == START and graph_input)) and versions:
            latest.append((max(versions.values()), name))
    if not latest:
        return START
    top = max(v for v, _ in latest)
    names = [n for v, n in latest if v == top]
    if len(names) > 1:
        raise InvalidUpdateError(
            f"Ambiguous update, specify as_node: nodes {sorted(names)} all wrote last."
        )
    return names[0]


class Update(tuple[Any, str | None]):
    """One update, ``(values, as_node)``, with the task id its writes are stored under
    when the caller named one (``StateUpdate.task_id``; otherwise a fresh one)."""

    task_id: str | None

    def __new__(cls, values: Any, as_node: str | None, task_id: str | None = None) -> Update:
        self = super().__new__(cls, (values, as_node))
        self.task_id = task_id
        return self


def update_state(
    graph: CompiledStateGraph,
    saver: Any,
    config: dict[str, Any],
    updates: Sequence[tuple[Any, str | None]],
) -> Generator[Request, Any, dict[str, Any]]:
    """One new checkpoint in which each ``(values, as_node)`` is written as if that node ran.

    Several updates form one superstep (each must name its node); ``END``, ``__input__``
    and ``__copy__`` stand alone.
    """
    read = _read_config(config)
    # "async": the saver may commit the new checkpoint without waiting for the disk if it
    # makes it durable when the edit's run lock is released - before update_state returns
    state = _thread_state(graph, saver, read, durability="async")
    # the new checkpoint's metadata has the caller's metadata and plain configurable
    # values, as a run's checkpoints do
    state.metadata_base = run_metadata(config)
    ns = read["configurable"]["checkpoint_ns"]
    if ns:
        # a subgraph's checkpoint: the new one names its ancestors' checkpoints too, so
        # the root graph can be run from the returned config
        cmap = (config.get("configurable") or {}).get("checkpoint_map") or {}
        state.checkpoint_map = {k: v for k, v in cmap.items() if k != ns}
    nodes = graph.program.nodes
    if not updates:
        raise ValueError("update_state needs at least one update.")
    for _, as_node in updates:
        if as_node is not None and as_node not in nodes and as_node not in (END, INPUT, COPY):
            raise InvalidUpdateError(
                f"Node {as_node} does not exist: as_node must be one of "
                f"{sorted(graph.builder.nodes)}."
            )
    if len(updates) > 1:
        if any(as_node is None for _, as_node in updates):
            raise InvalidUpdateError("as_node is required when applying multiple updates")
        if any(as_node in (END, INPUT, COPY) for _, as_node in updates):
            raise InvalidUpdateError(
                "END, __input__ and __copy__ updates must be the only update of their superstep."
            )
    tup = yield GetTuple(read)
    if tup is None:
        state.checkpoint = empty_checkpoint(checkpoint_id="", ts="")
        state.channels = graph.program.new_channels()
        state.checkpoint_config = None
        state.step = -1
        state.updated = set()
        pending = PendingWrites(None)
    else:
        histories = yield from delta_histories(graph.program, tup)
        pending = _restore(state, tup, histories)
        state.apply_null_writes(pending.null)
        if any(c in graph.program.delta_channels for c, _ in pending.null):
            state.delta_applied.append(NULL_TASK_ID)
    resolved = [
        (values, as_node or (START if tup is None else _last_writer(state, graph)))
        for values, as_node in updates
    ]
    step = state.step + 1
    values, first = resolved[0]
    if first == COPY:  # applies none of the copied checkpoint's writes
        return (yield from _seal(state, state.step, "fork"))
    source = "update"
    if first == INPUT and getattr(graph, "_input_writes_channels", False):
        # a Pregel graph's input goes straight into its input channels (its START node
        # only stands for that mapping): the update is that mapping's writes
        if tup is None:
            state.step = step = -1
        resolved, first, source = [(values, START)], START, "input"
    if first == INPUT:
        if tup is None:
            state.step = -2  # a thread's first input is step -1, as in a run
        state.channels[START].update([values])
        state.checkpoint["channel_versions"][START] = state.next_version()
        state.updated = {START}
        return (yield from _seal(state, state.step + 1, "input"))
    tasks = state.plan(step, for_execution=False)
    pending.adopt_legacy_ids(tasks, state.checkpoint["id"], state.ns, step)
    on_head = "checkpoint_id" not in read["configurable"]
    applied = []
    for t in tasks:
        if on_head and t.id in pending.succeeded:
            t.writes = pending.succeeded[t.id]
            applied.append(t)
    if first == END:
        if values is not None:
            raise InvalidUpdateError("update_state(..., as_node=END) takes values=None.")
        state.note_applied(applied)
        state.apply(tasks)
        return (yield from _seal(state, step, "update"))
    record_ids: dict[str, str] = {}
    for index, (values, as_node) in enumerate(resolved):
        node = nodes[as_node]
        task = Task(f"update:{index}:{as_node}", as_node, (PULL, as_node), None, node,
                    node.triggers, "", state.scope)
        named = getattr(updates[index], "task_id", None)
        if named:
            record_ids[task.id] = str(named)
        task.channels = state.channels
        task.config = state.task_config(task, step)
        task.writes = prepare_writes(
            state.channels, list((yield NodeWrites(node.write, task, values))))
        applied.append(task)
    state.apply(applied)
    yield from _record_delta_writes(state, tup, applied, on_head, record_ids)
    return (yield from _seal(state, step, source))


def _seal(
    state: ThreadState, step: int, source: str
) -> Generator[Request, Any, dict[str, Any]]:
    """Seal ``state`` into its next checkpoint, save it, and return its config. Like
    LangGraph's, it records no ``updated_channels``: a run from it plans every node, in
    the order they were added."""
    put = state.seal(step, source, record_updated=False)
    if put is not None:
        yield put
    config = state.checkpoint_config
    assert config is not None  # an update needs a checkpointer, and sealing sets the config
    return config


def _record_delta_writes(
    state: ThreadState, tup: Any, tasks: list[Task], on_head: bool, record_ids: dict[str, str]
) -> Generator[Request, Any, None]:
    """An update's writes to delta channels are their record (threadloom.engine.delta):
    store them on the checkpoint the update extends, and name them in the new
    checkpoint's metadata as the ones it applied (other children of an older checkpoint
    keep to their own). A thread's first update has no checkpoint to extend: the new
    checkpoint stores those channels whole."""
    delta = state.program.delta_channels
    if not delta:
        return
    if tup is None:
        state.force_delta_snapshot = True
        return
    for task in tasks:
        writes = [(c, v) for c, v in task.writes if c in delta]
        if not writes:
            continue
        update = task.id.startswith("update:")
        tid = record_ids.get(task.id) or str(uuid.uuid4()) if update else task.id
        if update or not on_head:
            yield PutWrites(tup.config, writes, tid, "")
        state.delta_applied.append(tid)
