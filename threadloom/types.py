"""The small vocabulary that nodes and callers share with the engine.

``Command`` and ``Send`` steer a run, ``interrupt()`` pauses one, ``StateSnapshot`` and
``PregelTask`` describe a thread's state, ``RetryPolicy`` says how a failing node retries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Generic, Literal, NamedTuple, NotRequired, TypeVar, Union

from typing_extensions import TypeAliasType, TypedDict

from threadloom._context import current_task
from threadloom._fields import state_object_to_dict

__all__ = [
    "All",
    "CachePolicy",
    "CheckpointPayload",
    "CheckpointStreamPart",
    "CustomStreamPart",
    "DebugPayload",
    "DebugStreamPart",
    "MessagesStreamPart",
    "StreamPart",
    "TaskPayload",
    "TaskResultPayload",
    "TasksStreamPart",
    "UpdatesStreamPart",
    "ValuesStreamPart",
    "Checkpointer",
    "Command",
    "Durability",
    "Interrupt",
    "Overwrite",
    "PregelExecutableTask",
    "PregelTask",
    "RetryPolicy",
    "Send",
    "StateSnapshot",
    "StateUpdate",
    "StreamMode",
    "StreamWriter",
    "TimeoutPolicy",
    "TracePolicy",
    "interrupt",
]

All = Literal["*"]
StreamMode = Literal["values", "updates", "custom", "messages", "debug", "tasks", "checkpoints"]
StreamWriter = Callable[[Any], None]
Durability = Literal["sync", "async", "exit"]
Checkpointer = Any  # None | bool | BaseCheckpointSaver

N = TypeVar("N")


def interrupt_id(namespace: str, index: int = 0) -> str:
    """The stable id of the ``index``-th ``interrupt()`` call of the task at ``namespace``.

    32 lowercase hex characters, so a resume map's keys can be told from a plain dict. The
    first call's id is the XXH3-128 digest of the namespace, as LangGraph computes it, so
    ids agree with what its clients derive.
    """
    from xxhash import xxh3_128_hexdigest

    key = namespace if index == 0 else f"{namespace}|{index}"
    return xxh3_128_hexdigest(key.encode())


_PLACEHOLDER_ID = "placeholder-id"


@dataclass(init=False, slots=True)
class Interrupt:
    """A pause raised by ``interrupt(value)``: ``value`` is shown to the person, ``id`` names
    the pause so a resume map can answer it, ``response_schema`` (a JSON schema, or None)
    describes the answer it expects."""

    value: Any
    id: str
    response_schema: dict[str, Any] | None

    def __init__(
        self,
        value: Any,
        id: str = _PLACEHOLDER_ID,
        response_schema: dict[str, Any] | None = None,
        **deprecated: Any,
    ) -> None:
        self.value = value
        # the JSON Schema an answer must match (from interrupt(..., response_schema=))
        self.response_schema = response_schema
        self.id = id
        if deprecated:
            self._legacy(deprecated)

    def _legacy(self, kwargs: dict[str, Any]) -> None:
        """LangGraph < 1.0's ``Interrupt(value, resumable=, ns=, when=, interrupt_id=)``:
        accepted with a deprecation warning; ``ns`` (the task namespace, a list of parts
        or a ``|``-joined string) gives the id, as ``Interrupt.from_ns`` does."""
        unknown = sorted(set(kwargs) - {"resumable", "ns", "when", "interrupt_id"})
        if unknown:
            raise TypeError(f"Interrupt() got unexpected keyword arguments: {unknown}.")
        import warnings

        from threadloom.warnings import LangGraphDeprecatedSinceV10

        warnings.warn(
            "Interrupt's resumable, ns, when and interrupt_id arguments are deprecated: "
            "build it as Interrupt(value, id) or Interrupt.from_ns(value, ns)",
            LangGraphDeprecatedSinceV10,
            stacklevel=3,
        )
        if self.id != _PLACEHOLDER_ID:
            return
        if kwargs.get("interrupt_id"):
            self.id = kwargs["interrupt_id"]
        elif kwargs.get("ns"):
            ns = kwargs["ns"]
            self.id = interrupt_id(ns if isinstance(ns, str) else "|".join(ns))

    @property
    def interrupt_id(self) -> str:
        """Deprecated alias of ``id``."""
        import warnings

        from threadloom.warnings import LangGraphDeprecatedSinceV10

        warnings.warn("`interrupt_id` is deprecated. Use `id` instead.",
                      LangGraphDeprecatedSinceV10, stacklevel=2)
        return self.id

    @classmethod
    def from_ns(cls, value: Any, ns: str) -> Interrupt:
        return cls(value=value, id=interrupt_id(ns))


class Send:
    """Run ``node`` in the next superstep with ``arg`` as its whole input (map-reduce fan-out).

    Return one or a list of them from a conditional edge, or put them in ``Command.goto``.
    """

    __slots__ = ("node", "arg", "timeout")

    def __init__(self, node: str, arg: Any, *, timeout: Any = None) -> None:
        self.node = node
        self.arg = arg
        self.timeout = TimeoutPolicy.coerce(timeout)  # overrides the node's own timeout

    def __hash__(self) -> int:
        return hash((self.node, repr(self.arg), self.timeout))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Send)
            and self.node == other.node
            and self.arg == other.arg
            and self.timeout == other.timeout
        )

    def __repr__(self) -> str:
        return f"Send(node={self.node!r}, arg={self.arg!r})"


def _command_base() -> type:
    # Tools may return a Command (ToolNode passes it through): langchain_core recognises
    # tool outputs by this mixin.
    try:
        from langchain_core.messages.tool import ToolOutputMixin

        return ToolOutputMixin
    except ImportError:  # pragma: no cover - older langchain_core
        return object


@dataclass(frozen=True, eq=True)
class Command(_command_base(), Generic[N]):  # type: ignore[misc]
    """Update the state and choose where to go next, in one value.

    * returned from a node: ``update`` is applied like a normal return value and ``goto``
      adds destinations (node names or ``Send``) to the static edges;
    * ``graph=Command.PARENT`` applies it in the parent graph instead;
    * given to ``invoke``/``stream``: ``resume`` answers pending ``interrupt()`` calls
      (one value, or ``{interrupt_id: value}``), ``update`` is written as input.
    """

    graph: str | None = None
    update: Any | None = None
    resume: Any | None = None
    goto: Any = ()

    PARENT: ClassVar[Literal["__parent__"]] = "__parent__"

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{name}={value!r}"
            for name in ("graph", "update", "resume", "goto")
            if (value := getattr(self, name))
        )
        return f"Command({parts})"

    def _update_as_tuples(self) -> list[tuple[str, Any]]:
        """The update as ``(key, value)`` pairs. threadloom itself does not call it: it is
        LangGraph's, and code written for LangGraph (agent middleware merging two
        commands, say) calls it, so it stays (tests/test_public_surface.py)."""
        update = self.update
        if update is None:
            return []
        if isinstance(update, dict):
            return list(update.items())
        if isinstance(update, (list, tuple)) and all(
            isinstance(t, tuple) and len(t) == 2 and isinstance(t[0], str) for t in update
        ):
            return list(update)
        as_dict = state_object_to_dict(update)
        if as_dict is not None:
            return list(as_dict.items())
        return [("__root__", update)]


@dataclass(slots=True)
class Overwrite:
    """Write ``value`` to a reducer key as is, bypassing its reducer.

    ``type`` is a fixed marker, so the JSON form (``{"value": ..., "type":
    "__overwrite__"}``) is still recognised as an overwrite after a round trip.
    """

    value: Any
    type: str = field(default="__overwrite__", repr=False, compare=False, kw_only=True)


def omit_payload(value: Any) -> dict[str, Any]:
    """A trace processor that records nothing of the value: ``{}`` in its place.

    For ``TracePolicy(process_inputs=omit_payload)`` (or ``process_outputs=``) on a node
    whose inputs or outputs must not reach the tracer; the node itself still gets the value.
    """
    return {}


class PregelTask(NamedTuple):
    """One task of a step as ``get_state`` shows it."""

    id: str
    name: str
    path: tuple[Any, ...]
    error: Any | None = None
    interrupts: tuple[Interrupt, ...] = ()
    state: Any | None = None
    result: Any | None = None


class StateSnapshot(NamedTuple):
    """A thread's state at one checkpoint: the values, what runs next, and why it paused."""

    values: dict[str, Any] | Any
    next: tuple[str, ...]
    config: dict[str, Any]
    metadata: dict[str, Any] | None
    created_at: str | None
    parent_config: dict[str, Any] | None
    tasks: tuple[PregelTask, ...]
    interrupts: tuple[Interrupt, ...] = ()


class StateUpdate(NamedTuple):
    """One update of ``bulk_update_state``."""

    values: dict[str, Any] | None
    as_node: str | None = None
    task_id: str | None = None


_PROGRAMMING_ERRORS = (
    ValueError,
    TypeError,
    ArithmeticError,
    ImportError,
    LookupError,
    NameError,
    SyntaxError,
    RuntimeError,
    ReferenceError,
    StopIteration,
    StopAsyncIteration,
    OSError,
)


def default_retry_on(exc: Exception) -> bool:
    """Retry transient failures, not programming errors.

    Connection errors and HTTP 5xx responses (httpx, requests) are retried; ValueError,
    TypeError, KeyError and the like are not, since running the same code again will fail
    the same way.
    """
    if isinstance(exc, ConnectionError):
        return True
    from threadloom.errors import NodeTimeoutError

    if isinstance(exc, NodeTimeoutError):  # a slow attempt may well be fast next time
        return True
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if response is None and type(exc).__name__ == "HTTPError" and type(
        exc
    ).__module__.startswith("requests"):
        return True  # no response at all: the connection failed
    if type(exc).__name__ == "HTTPStatusError" or (
        status is not None and type(exc).__module__.startswith("requests")
    ):
        return isinstance(status, int) and 500 <= status < 600
    return not isinstance(exc, _PROGRAMMING_ERRORS)


class RetryPolicy(NamedTuple):
    """How a failing node is retried, inside the same superstep.

    ``max_attempts`` counts the first try. The wait before retry k is
    ``min(max_interval, initial_interval * backoff_factor ** (k - 1))`` seconds, plus up to
    one second of random jitter.
    """

    initial_interval: float = 0.5
    backoff_factor: float = 2.0
    max_interval: float = 128.0
    max_attempts: int = 3
    jitter: bool = True
    retry_on: type[BaseException] | Sequence[type[BaseException]] | Callable[
        [Exception], bool
    ] = default_retry_on


def _seconds(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or a timedelta, got {value!r}.")
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value!r}.")
    return float(value)


@dataclass(frozen=True, slots=True)
class TimeoutPolicy:
    """How long one attempt of an (async) node may run.

    ``run_timeout``: seconds (or a timedelta) from the attempt's start. ``idle_timeout``:
    seconds without progress; progress is a heartbeat (``runtime.heartbeat()``) and, with
    ``refresh_on="auto"``, also anything the node streams (custom events, LLM tokens,
    writes). A timed-out attempt raises ``NodeTimeoutError``, which retry policies may
    retry. A bare number or timedelta where a policy is expected is a ``run_timeout``.
    """

    run_timeout: float | None = None
    idle_timeout: float | None = None
    refresh_on: Literal["auto", "heartbeat"] = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_timeout", _seconds("run_timeout", self.run_timeout))
        object.__setattr__(self, "idle_timeout", _seconds("idle_timeout", self.idle_timeout))
        if self.refresh_on not in ("auto", "heartbeat"):
            raise ValueError(
                f"refresh_on must be 'auto' or 'heartbeat', got {self.refresh_on!r}."
            )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (int, float, timedelta)) and not isinstance(other, bool):
            other = TimeoutPolicy.coerce(other)  # a bare number means a run timeout
        if not isinstance(other, TimeoutPolicy):
            return NotImplemented
        return (self.run_timeout, self.idle_timeout, self.refresh_on) == (
            other.run_timeout, other.idle_timeout, other.refresh_on
        )

    def __hash__(self) -> int:
        return hash((self.run_timeout, self.idle_timeout, self.refresh_on))

    @classmethod
    def coerce(cls, value: Any) -> TimeoutPolicy | None:
        """None, a policy (returned as is), or seconds/timedelta (a ``run_timeout``)."""
        if value is None or isinstance(value, cls):
            return value
        return cls(run_timeout=value)


@dataclass
class PregelExecutableTask:
    """One runnable task in LangGraph's low-level terms: a ``proc`` called with
    ``(input, config)``, the ``writes`` it made, its ``writers``, retry and timeout policies.

    Code that drives tasks by hand runs it with ``langgraph.pregel._retry.run_with_retry``
    (``threadloom.engine.retry``).
    """

    name: str
    input: Any
    proc: Any
    writes: Any
    config: dict[str, Any]
    triggers: Sequence[str]
    retry_policy: Sequence[RetryPolicy]
    cache_key: Any
    id: str
    path: tuple[Any, ...]
    writers: Sequence[Any] = ()
    subgraphs: Sequence[Any] = ()
    timeout: TimeoutPolicy | None = None

    def __post_init__(self) -> None:
        self.timeout = TimeoutPolicy.coerce(self.timeout)


def default_cache_key(*args: Any, **kwargs: Any) -> str:
    """The default ``CachePolicy.key_func``: a hash of the arguments' pickled form.

    Equal inputs give equal keys, also in another process: dicts with string keys are
    read in sorted order, sets in a fixed order, and pickling keeps no back-references
    (two equal strings hash the same whether or not they are one object). Inputs that
    cannot be pickled raise ``TypeError``: give the policy a ``key_func`` for them.
    """
    import io
    import pickle

    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True  # no memo: the bytes depend on values, not on object identity
    try:
        pickler.dump(_canonical((args, kwargs)))
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
        raise TypeError(
            f"CachePolicy could not compute a cache key: the input cannot be pickled "
            f"({type(exc).__name__}: {exc}). Pass CachePolicy(key_func=...) returning a "
            "string (or any picklable value) that identifies the input."
        ) from exc
    return hashlib.blake2b(buffer.getvalue(), digest_size=16).hexdigest()


def _canonical(value: Any) -> Any:
    """``value`` with containers rebuilt so equal values pickle to equal bytes."""
    kind = type(value)
    if kind is dict:
        items = [(k, _canonical(v)) for k, v in value.items()]
        if all(type(k) is str for k in value):
            items.sort(key=lambda kv: kv[0])
        return ("__dict__", tuple(items))
    if kind is list or kind is tuple:
        return (kind.__name__, tuple(_canonical(v) for v in value))
    if kind is set or kind is frozenset:
        members = [_canonical(v) for v in value]
        return ("__set__", tuple(sorted(members, key=repr)))
    return value


@dataclass(frozen=True)
class CachePolicy(Generic[N]):
    """Cache a node's (or task's) result; needs a cache: ``compile(cache=InMemoryCache())``.

    A run reaching the node with an input it has seen (same ``key_func(input)``) replays
    the writes stored then instead of running it; the update is streamed with
    ``"__metadata__": {"cached": True}``. Failed or interrupted runs are not cached.

    Args:
        key_func: the input's cache key; the default hashes the pickled input.
        ttl: seconds an entry lives; ``None`` keeps it until the cache is cleared
            (``graph.clear_cache()``).
    """

    key_func: Callable[..., Any] = default_cache_key
    ttl: int | None = None


@dataclass(frozen=True)
class TracePolicy:
    """What a node's trace run records, for tracers only (LangSmith and other
    ``BaseTracer`` handlers): ``add_node(..., trace_policy=TracePolicy(...))``.

    ``process_inputs(input)`` / ``process_outputs(output)`` return what the tracer records
    instead of the real values (e.g. with secrets removed). The node, the graph's result,
    the stream and other callback handlers still see the real values. A processor that
    raises is ignored: the real value is recorded and the run goes on.
    """

    process_inputs: Callable[[Any], Any] | None = None
    process_outputs: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class GraphOutput:
    """What ``invoke(..., version="v2")`` returns: the values and the pending interrupts."""

    value: Any
    interrupts: tuple[Interrupt, ...] = field(default_factory=tuple)

    # The v1 result was a dict with an "__interrupt__" key: dict-style access still works
    # (deprecated since LangGraph 1.1) and reads ``value`` or ``interrupts``.

    def __getitem__(self, key: str) -> Any:
        _warn_dict_access("result[key]", "result.value[key]")
        if key == "__interrupt__":
            return self.interrupts
        return self.value[key]

    def __contains__(self, key: object) -> bool:
        _warn_dict_access("key in result", "key in result.value")
        if key == "__interrupt__":
            return bool(self.interrupts)
        return isinstance(self.value, dict) and key in self.value


def _warn_dict_access(form: str, instead: str) -> None:
    import warnings

    from threadloom.warnings import LangGraphDeprecatedSinceV11

    warnings.warn(
        f"Accessing GraphOutput via `{form}` is deprecated. Use `{instead}` (and "
        "`result.interrupts` for the pending interrupts) instead.",
        LangGraphDeprecatedSinceV11,
        stacklevel=3,
    )


def interrupt(value: Any, *, response_schema: Any = None) -> Any:
    """Pause the running node and show ``value`` to a person.

    The first time it is reached it stops the run (the state is checkpointed). When the
    caller resumes with ``Command(resume=answer)``, the node runs again from its first line
    and this call returns ``answer``. Several calls in one node are answered in order.

    ``response_schema`` describes the answer: a JSON schema dict (shown as is, the answer
    is returned unchecked), or a pydantic model, TypedDict or dataclass (shown as its JSON
    schema; the answer is validated and returned as that type). An answer that does not
    validate fails the resume with the validation error (``errors.is_invalid_resume(exc)``
    is true) and leaves the interrupt pending, so it can be answered again.

    Needs a checkpointer to be resumable; must be called inside a running node.

    ``response_schema`` (a pydantic model, TypedDict, dataclass, or a JSON Schema dict)
    says what the answer must look like: the pause shows it as JSON Schema, and a typed
    schema validates the answer (returned as that type); a wrong answer fails the resume
    with pydantic's ``ValidationError`` (``is_invalid_resume(exc)`` is true) and the
    question stays open.
    """
    task = current_task.get()
    if task is None:
        raise RuntimeError(
            "interrupt() was called outside a running graph node. Call it from inside a "
            "node function while the graph runs (invoke/stream)."
        )
    return task.interrupt(value, response_schema)


# -- stream parts: what ``stream(..., version="v2")`` yields --------------------------
# Each part is a dict ``{"type": <mode>, "ns": <namespace tuple>, "data": <payload>}``;
# "values" parts also carry the run's pending ``interrupts``.

StateT = TypeVar("StateT")
OutputT = TypeVar("OutputT")


class TaskPayload(TypedDict):
    """A task started (``tasks`` mode / debug ``task``)."""

    id: str
    name: str
    input: Any
    triggers: list[str]
    metadata: NotRequired[dict[str, Any]]


class TaskResultPayload(TypedDict):
    """A task ended (``tasks`` mode / debug ``task_result``)."""

    id: str
    name: str
    error: Any
    result: dict[str, Any]
    interrupts: list[dict[str, Any]]


class CheckpointTask(TypedDict):
    """A task as a checkpoint payload lists it."""

    id: str
    name: str
    error: NotRequired[Any]
    interrupts: tuple[Any, ...]
    state: Any


class CheckpointPayload(TypedDict, Generic[StateT]):
    """A checkpoint was saved (``checkpoints`` mode / debug ``checkpoint``)."""

    config: dict[str, Any]
    parent_config: dict[str, Any] | None
    values: StateT
    metadata: dict[str, Any]
    next: list[str]
    tasks: list[CheckpointTask]


class DebugPayload(TypedDict, Generic[StateT]):
    """A ``debug`` event: one of the payloads above, stamped with step and time."""

    step: int
    timestamp: str
    type: Literal["checkpoint", "task", "task_result"]
    payload: CheckpointPayload[StateT] | TaskPayload | TaskResultPayload


class ValuesStreamPart(TypedDict, Generic[OutputT]):
    type: Literal["values"]
    ns: tuple[str, ...]
    data: OutputT
    interrupts: tuple[Interrupt, ...]


class UpdatesStreamPart(TypedDict):
    type: Literal["updates"]
    ns: tuple[str, ...]
    data: dict[str, Any]


class MessagesStreamPart(TypedDict):
    type: Literal["messages"]
    ns: tuple[str, ...]
    data: tuple[Any, dict[str, Any]]


class CustomStreamPart(TypedDict):
    type: Literal["custom"]
    ns: tuple[str, ...]
    data: Any


class CheckpointStreamPart(TypedDict, Generic[StateT]):
    type: Literal["checkpoints"]
    ns: tuple[str, ...]
    data: CheckpointPayload[StateT]


class TasksStreamPart(TypedDict):
    type: Literal["tasks"]
    ns: tuple[str, ...]
    data: TaskPayload | TaskResultPayload


class DebugStreamPart(TypedDict, Generic[StateT]):
    type: Literal["debug"]
    ns: tuple[str, ...]
    data: DebugPayload[StateT]


StreamPart = TypeAliasType(
    "StreamPart",
    Union[  # noqa: UP007 - a runtime alias, subscripted as StreamPart[StateT, OutputT]
        ValuesStreamPart[OutputT],
        UpdatesStreamPart,
        MessagesStreamPart,
        CustomStreamPart,
        CheckpointStreamPart[StateT],
        TasksStreamPart,
        DebugStreamPart[StateT],
    ],
    type_params=(StateT, OutputT),
)
"""Any part ``stream(..., version="v2")`` yields (narrow on ``part["type"]``)."""
