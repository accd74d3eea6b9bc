"""One unit of work in a superstep, and the context a running node sees.

A ``Task`` is created by the planner (which node, with what input, why it was triggered)
and carries the node's writes back to the loop. While the node runs, the task is the
``current_task`` context value: ``interrupt()``, ``get_config()`` and the stream writer
all go through it.
"""

from __future__ import annotations

import contextvars
import hashlib
import threading
import time
import uuid
from typing import Any

from xxhash import xxh3_128_hexdigest

from threadloom._schema import is_typeddict
from threadloom.checkpoint.serde import register_type
from threadloom.constants import CONFIG_KEY_RUNTIME, PULL, RESUME
from threadloom.errors import GraphInterrupt, mark_invalid_resume
from threadloom.runtime import task_runtime
from threadloom.types import Interrupt, interrupt_id


def task_id(*parts: object) -> str:
    """A deterministic UUID-shaped id: the same parts give the same id (the id of a task
    called from a running task; before planned tasks had ``planned_task_id``, theirs)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).hexdigest()
    return _uuid_shaped(digest)


def _uuid_shaped(digest: str) -> str:
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


def checkpoint_id_bytes(checkpoint_id: str) -> bytes:
    """The bytes a checkpoint id contributes to its tasks' ids: the UUID's 16 bytes (an
    id that is no UUID contributes its text)."""
    if type(checkpoint_id) is str:
        # the usual hyphenated form, parsed without building a UUID (planned every step):
        # 32 hex digits once the hyphens are gone are exactly what uuid.UUID reads
        digits = checkpoint_id.replace("-", "")
        if len(digits) == 32:
            try:
                raw = bytes.fromhex(digits)
            except ValueError:
                raw = b""
            if len(raw) == 16:
                return raw
    try:
        return uuid.UUID(checkpoint_id).bytes
    except (ValueError, AttributeError, TypeError):
        return str(checkpoint_id).encode()


def planned_task_id(
    checkpoint: bytes, ns: str, step: int, name: str, kind: str, *why: object,
    sha1: bool = False,
) -> str:
    """The id of a task planned from a checkpoint: the XXH3-128 digest of the checkpoint
    id's bytes (``checkpoint_id_bytes``), then the task's namespace path (``ns|name``),
    the step, the node name, the kind of task (``PULL``/``PUSH``) and why it runs (the
    trigger channels that fired, or a ``Send``'s index). The ids agree with those
    LangGraph gives the same tasks, so the pending writes of checkpoints it saved are
    found by the tasks planned here. ``sha1``: for a checkpoint of format v1, whose tasks
    took the first 16 bytes of the SHA-1 digest of the same bytes instead."""
    path = f"{ns}|{name}" if ns else name
    # (one trigger, the usual case, is joined without a generator)
    tail = why[0] if len(why) == 1 and type(why[0]) is str else "".join(map(str, why))
    data = checkpoint + f"{path}{step}{name}{kind}{tail}".encode()
    if sha1:
        return _uuid_shaped(hashlib.sha1(data, usedforsecurity=False).hexdigest()[:32])
    d = xxh3_128_hexdigest(data)
    return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:]}"


class ResumeBox:
    """Answers given with ``Command(resume=...)``, shared by a run and its subgraph runs.

    A bare value goes to the first ``interrupt()`` call that has no stored answer yet; a
    map goes to the calls whose interrupt ids it names. Each answer is used once.
    """

    __slots__ = ("value", "has_value", "by_id", "_lock")

    def __init__(self, resume: Any = None, has_value: bool = False) -> None:
        self._lock = threading.Lock()
        self.by_id: dict[str, Any] = {}
        self.value = None
        self.has_value = False
        if has_value:
            if is_resume_map(resume):
                self.by_id = dict(resume)
            else:
                self.value = resume
                self.has_value = True

    def take(self, iid: str) -> tuple[bool, Any]:
        with self._lock:
            if iid in self.by_id:
                return True, self.by_id.pop(iid)
            if self.has_value:
                self.has_value = False
                value, self.value = self.value, None
                return True, value
            return False, None


def is_resume_map(value: Any) -> bool:
    """A dict counts as ``{interrupt_id: answer}`` only if every key looks like an id."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(
            isinstance(k, str) and len(k) == 32 and all(c in "0123456789abcdef" for c in k)
            for k in value
        )
    )


class FreshChannels:
    """A task's state writes applied to copies of their channels, for its routing
    functions to read (``NodeWriter.fresh_state``): ``updates`` the writes, ``grouped``
    their values by channel, ``channels`` the updated copies, ``changed`` what each
    copy's ``update`` returned, ``bases`` the channels copied. When the task runs alone
    in its step, ``ThreadState.apply`` takes the copies instead of updating the channels
    with the same values again (a reducer then runs once a step, not twice)."""

    __slots__ = ("bases", "changed", "channels", "grouped", "updates")

    def __init__(
        self,
        updates: list[tuple[str, Any]],
        grouped: dict[str, list[Any]],
        channels: dict[str, Any],
        changed: dict[str, bool],
        bases: dict[str, Any],
    ) -> None:
        self.updates = updates
        self.grouped = grouped
        self.channels = channels
        self.changed = changed
        self.bases = bases


class Task:
    """A planned node execution; also the node's view of the run while it executes."""

    __slots__ = (
        "id",
        "name",
        "path",
        "input",
        "node",
        "triggers",
        "ns",
        "config",
        "writes",
        "resume",
        "interrupt_count",
        "interrupts",
        "paused",
        "error",
        "scope",
        "result",
        "done",
        "channels",
        "managed",
        "call_index",
        "stateful_calls",
        "attempt",
        "cached",
        "pushed",
        "timeout",
        "_runtime",
        "answers",
        "asked",
        "fresh",
    )

    def __init__(
        self,
        id: str,
        name: str,
        path: tuple[Any, ...],
        input: Any,
        node: Any,
        triggers: tuple[str, ...],
        ns: str,
        scope: Any,
    ) -> None:
        self.id = id
        self.name = name
        self.path = path
        self.input = input
        self.node = node
        self.triggers = triggers
        self.ns = ns
        self.scope = scope
        self.config: dict[str, Any] = {}
        self.writes: list[tuple[str, Any]] = []
        # answers to its interrupt() calls, in call order; once one call was answered out
        # of order (calls made from threads), all of them by interrupt id in ``answers``
        self.resume: list[Any] = []
        self.answers: dict[str, Any] = {}
        self.asked: tuple[str, ...] = ()  # ids of the interrupts it was saved waiting on
        self.interrupt_count = 0
        self.interrupts: tuple[Interrupt, ...] = ()
        # it paused: raised GraphInterrupt (interrupts may be empty: a subgraph breakpoint)
        self.paused = False
        self.error: BaseException | None = None
        self.result: Any = None
        self.done = False
        self.channels: Any = None
        self.managed: dict[str, Any] | None = None
        self.call_index = 0  # how many tasks this task called (ids of calls, see calls.py)
        # how many graphs it invoked: each after the first runs under the task's
        # namespace (a checkpointer=True one: its stable namespace) + "|<n>", call order
        self.stateful_calls = 0
        self.attempt: tuple[int, float | None] = (1, None)  # (number, first attempt's time)
        # its writes were replayed (node cache, or saved by an earlier attempt), not run
        self.cached = False
        # writes made while the node runs (``push_message``), kept ahead of its return's
        self.pushed: list[tuple[str, Any]] = []
        self._runtime: Any = None
        self.fresh: FreshChannels | None = None  # (see FreshChannels)
        self.timeout: Any = None  # a Send's TimeoutPolicy, over the node's own

    # -- what a node can reach -----------------------------------------------------

    @property
    def store(self) -> Any:
        return self.scope.store

    @property
    def writer(self) -> Any:
        return self.scope.custom_writer(self)

    @property
    def runtime(self) -> Any:
        runtime = self._runtime
        if runtime is None:
            config = self.config
            conf = config.get("configurable") or {}
            attempt, first_time = self.attempt
            runtime = self._runtime = task_runtime(
                self.scope.runtime_fields(),
                (self.ns, self.id, conf.get("checkpoint_map"), conf.get("thread_id"),
                 config.get("run_id"), attempt, first_time),
            )
        return runtime

    def start_attempt(self, attempt: int) -> None:
        """Number the attempt about to run (retries re-run a task in the same step); its
        runtime (which says which attempt this is) goes in the node's config under
        ``CONFIG_KEY_RUNTIME``."""
        first_time = self.attempt[1] if attempt > 1 else None
        self.attempt = (attempt, first_time if first_time is not None else time.time())
        self._runtime = None
        self.fresh = None
        self.call_index = 0  # a retried caller replays the calls that already finished
        self.stateful_calls = 0
        self.pushed = []  # messages pushed by an earlier attempt are not kept
        config = self.config
        conf = config.get("configurable")
        if conf is not None:  # (the ``runtime`` property's work, without the lookup)
            conf[CONFIG_KEY_RUNTIME] = self._runtime = task_runtime(
                self.scope.runtime_fields(),
                (self.ns, self.id, conf.get("checkpoint_map"), conf.get("thread_id"),
                 config.get("run_id"), attempt, self.attempt[1]),
            )

    def context_copy(self) -> contextvars.Context:
        return contextvars.copy_context()

    def load_answers(self, saved: Any, asked: tuple[Interrupt, ...] = ()) -> None:
        """Take the answers earlier resumes saved for this task (a list in call order, or a
        map by interrupt id) and the interrupts it was saved waiting on."""
        if isinstance(saved, dict):
            self.resume, self.answers = [], dict(saved)
        else:
            self.resume, self.answers = list(saved or ()), {}
        self.asked = tuple(i.id for i in asked)

    def interrupt(self, value: Any, response_schema: Any = None) -> Any:
        """Return the stored answer for this call, or pause the task asking ``value``."""
        index = self.interrupt_count
        self.interrupt_count += 1
        iid = interrupt_id(self.ns, index)
        if index < len(self.resume):
            return checked_answer(self.resume[index], response_schema, iid)
        if iid in self.answers:
            return checked_answer(self.answers[iid], response_schema, iid)
        found, answer = self.scope.resume_box.take(iid)
        if not found:
            found, answer = self._answer_to_earlier_id(index)
        if found:
            checked = checked_answer(answer, response_schema, iid)
            self._keep_answer(index, iid, answer)  # saved with the task's writes when it ends
            return checked
        raise GraphInterrupt([Interrupt(value=value, id=iid,
                                        response_schema=json_schema_of(response_schema))])

    def _answer_to_earlier_id(self, index: int) -> tuple[bool, Any]:
        """An answer addressed to the interrupt this task was saved waiting on, when that
        interrupt carries the id of one of its earlier calls (saved by a version that gave
        every interrupt of a task the task's id): it answers this call."""
        earlier = {interrupt_id(self.ns, i) for i in range(index)}
        for asked in self.asked:
            if asked in earlier:
                found, answer = self.scope.resume_box.take(asked)
                if found:
                    return True, answer
        return False, None

    def _keep_answer(self, index: int, iid: str, answer: Any) -> None:
        if not self.answers and index == len(self.resume):
            self.resume.append(answer)
            return
        if self.resume:  # answered out of call order: from now on by interrupt id
            self.answers.update(
                (interrupt_id(self.ns, i), a) for i, a in enumerate(self.resume)
            )
            self.resume = []
        self.answers[iid] = answer

    def push_message(self, message: Any, state_key: str | None) -> None:
        """Stream ``message`` now (``messages`` mode) and, with a key, write it to the state."""
        scope = self.scope
        if "messages" in scope.modes and message.id not in scope.message_ids:
            scope.message_ids.add(message.id)
            source = self.config.get("metadata") or {}
            meta = {k: v for k, v in source.items() if k.startswith("langgraph_")}
            meta["checkpoint_ns"] = self.ns
            scope.emit("messages", (message, meta))
        if state_key:
            self.pushed.append((state_key, message))

    def has_answers(self) -> bool:
        return bool(self.resume or self.answers)

    def resume_write(self) -> tuple[str, Any]:
        return (RESUME, dict(self.answers) if self.answers else list(self.resume))

    def __repr__(self) -> str:
        return f"Task({self.name!r}, id={self.id!r}, path={self.path!r})"


INVALID_RESUME_NOTE = "threadloom: the answer does not match the interrupt's response_schema"


def json_schema_of(schema: Any) -> dict[str, Any] | None:
    """A response schema as JSON Schema (a dict is taken as one already)."""
    if schema is None or isinstance(schema, dict):
        return schema
    if hasattr(schema, "model_json_schema"):
        as_json: dict[str, Any] = schema.model_json_schema()
        return as_json
    from pydantic import TypeAdapter

    return TypeAdapter(schema).json_schema()


def checked_answer(answer: Any, schema: Any, iid: str) -> Any:
    """The answer as the typed response schema asks (a JSON Schema dict checks nothing)."""
    if schema is None or isinstance(schema, dict):
        return answer
    from pydantic import TypeAdapter, ValidationError

    if isinstance(schema, type) and not is_typeddict(schema):
        # the graph's own code named this class: its validated answers (which usually end
        # up in the state) may be checkpointed, as if it were passed to register_type
        register_type(schema)
    try:
        if hasattr(schema, "model_validate"):
            return schema.model_validate(answer)
        return TypeAdapter(schema).validate_python(answer)
    except ValidationError as exc:
        exc.add_note(f"{INVALID_RESUME_NOTE} (interrupt {iid})")
        mark_invalid_resume(exc)
        raise


def task_order(task: Task) -> tuple[Any, ...]:
    """The key that sorts tasks in the order their writes apply (and their events show):
    triggered nodes by name, then ``Send`` packets by index, error handlers by the path
    of the task that failed."""
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


class _Paused(tuple[Any, ...]):
    """The interrupts of a task that paused without asking anything: a subgraph it runs
    stopped at a breakpoint (``interrupt_before``/``after``). Empty, but true: the task
    did not finish."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return True


PAUSED_AT_BREAKPOINT: tuple[Interrupt, ...] = _Paused()
